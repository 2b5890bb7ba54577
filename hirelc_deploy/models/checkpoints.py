"""Safe checkpoint loading: tensors only (``weights_only=True``), checked against the architecture."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError


def _extract_state_dict(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: not a state dict of tensors (nor a dict holding one under 'state_dict')")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file without executing code; raise CheckpointError naming the file on any problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: refused to load (not a plain tensor checkpoint: {first})") from None
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
