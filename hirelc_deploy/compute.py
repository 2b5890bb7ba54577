"""Where the training-side work runs (Fisher, candidate evaluation, BatchNorm recalibration, fine-tuning):
``--device auto|cpu|cuda[:N]``. Latency is never measured here: it is measured on the target, through its backend.

The code that trains or scores a model follows the model: batches are moved to the device of the model's
parameters, so one call (``model.to(device)``) decides where everything runs, and a CPU-only machine runs exactly
the code it ran before the flag existed.
"""

from __future__ import annotations

import contextlib
import re

import torch
from torch import nn

from .errors import InputError

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def resolve_device(text: str = "auto") -> torch.device:
    """The torch device ``--device`` names; ``auto`` is the first CUDA device when there is one, else the CPU.
    A CUDA device this machine does not have is a one-line InputError naming the flag."""
    if not isinstance(text, str) or not _DEVICE.match(text):
        raise InputError(f"--device {text}: expected auto, cpu, cuda or cuda:N")
    if text == "auto":
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(text)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch is built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise InputError(f"--device {text}: CUDA is not available on this machine ({why}); use --device cpu")
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise InputError(f"--device {text}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                             f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")
        device = torch.device("cuda", index)
    return device


def device_of(model: nn.Module) -> torch.device:
    """The device of ``model``'s parameters (the CPU for a model without any)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` on ``device``, asynchronously from pinned memory where it can be."""
    return tensor if tensor.device == device else tensor.to(device, non_blocking=True)


def training_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Mixed precision for training on CUDA (float16 autocast; pair with ``grad_scaler``); nothing on the CPU,
    where float16 matmuls are slower and the numbers must stay what they were."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def grad_scaler(device: torch.device) -> torch.amp.GradScaler:
    """Loss scaling for float16 training on CUDA; disabled (a pass-through) elsewhere."""
    return torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
