"""Safe checkpoint loading: tensors only (``weights_only=True``), checked against the architecture; and the
registry of public checkpoints ``--weights`` may name."""

from __future__ import annotations

import hashlib
import pickle
import re
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError
from ..runs import atomic_write_bytes, sha256


def _extract_state_dict(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: not a state dict of tensors (nor a dict holding one under 'state_dict')")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _unpickling_problem(message: str) -> str:
    """What torch's weights-only unpickler refused, in one line: a global it would have to import (a pickle
    that calls code, never needed by tensors) or bytes that are not a pickle at all (a damaged file)."""
    detail = message.split("WeightsUnpickler error:", 1)[-1].strip()
    detail = detail.splitlines()[0].strip() if detail else "unreadable"
    if "Unsupported global" in detail:
        found = re.search(r"GLOBAL (\S+)", detail)
        what = found.group(1) if found else "a global"
        return (f"refused to load: it would call {what}, which a plain tensor checkpoint never does "
                "(a pickle that executes code is never unpickled; a whole model saved with torch.save(model) is "
                "one): save the weights with torch.save(model.state_dict(), PATH) and pass that file")
    return f"corrupt or truncated checkpoint (not a readable tensor pickle: {detail})"


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file without executing code; raise CheckpointError naming the file on any problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{path}: {_unpickling_problem(str(exc))}") from None
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({first})") from None
    return _extract_state_dict(obj, path)


def load_weights(model: nn.Module, path: Path) -> nn.Module:
    """Load a checkpoint into ``model``; keys and shapes must match (BN step counters may be absent)."""
    state = read_state_dict(path)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in state if k in expected and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        detail = "; ".join(
            f"{label} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
            if keys
        )
        raise CheckpointError(f"{path}: does not fit {type(model).__name__} ({detail})")
    model.load_state_dict(state, strict=False)
    return model


@dataclass(frozen=True)
class PublicCheckpoint:
    """A published checkpoint ``--weights`` can name instead of a path: where it comes from and its digest."""

    model: str
    url: str
    sha256: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


_AKAMASTER = "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models"
PUBLIC_CHECKPOINTS = {
    "resnet20-cifar10": PublicCheckpoint(
        "resnet20", f"{_AKAMASTER}/resnet20-12fca82f.th",
        "12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8"),
    "resnet56-cifar10": PublicCheckpoint(
        "resnet56", f"{_AKAMASTER}/resnet56-4bfd9763.th",
        "4bfd97631478d6b638d2764fd2baff3edb1d7d82252d54439343b6596b9b5367"),
}


def resolve_weights(value: str | Path, cache: Path, timeout_s: float = 30.0) -> Path:
    """The checkpoint file ``--weights`` means: an existing path, or a registered public checkpoint name,
    fetched once into ``cache`` and checked against its sha256. Offline, the error says where to put it."""
    path = Path(value)
    if path.exists() or str(value) not in PUBLIC_CHECKPOINTS:
        if not path.is_file():
            names = ", ".join(PUBLIC_CHECKPOINTS)
            raise CheckpointError(f"--weights {value}: no such file (nor a public checkpoint name: {names})")
        return path
    entry = PUBLIC_CHECKPOINTS[str(value)]
    target = Path(cache) / entry.filename
    if target.is_file():
        if sha256(target) != entry.sha256:
            raise CheckpointError(f"--weights {value}: cached file {target} does not match the published sha256 "
                                  "(delete it to fetch again)")
        return target
    try:
        with urllib.request.urlopen(entry.url, timeout=timeout_s) as response:
            data = response.read()
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"--weights {value}: could not download {entry.url} ({exc}); put the file at "
                              f"{target}") from None
    if hashlib.sha256(data).hexdigest() != entry.sha256:
        raise CheckpointError(f"--weights {value}: download from {entry.url} does not match the published sha256")
    atomic_write_bytes(target, data)
    return target
