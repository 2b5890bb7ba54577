"""2:4 structured sparsity: in every group of four weights along a convolution's input channels, two are zero.

That is the pattern NVIDIA's sparse tensor cores run (Ampere and later; TensorRT uses it when the engine is built
with sparse weights allowed and a sparse kernel is faster). The two largest magnitudes of each group are kept.
The masks are applied through ``torch.nn.utils.prune`` so fine-tuning trains the kept weights with the zeros held,
then made permanent before export.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune


def eligible(conv: nn.Module) -> bool:
    """Whether a layer can take the 2:4 pattern: a dense (not grouped) convolution with input channels in
    groups of four (the stem's three colour channels and depthwise convolutions cannot)."""
    return isinstance(conv, nn.Conv2d) and conv.groups == 1 and conv.in_channels % 4 == 0


def two_four_mask(weight: torch.Tensor) -> torch.Tensor:
    """Mask (same shape as a KCRS convolution weight) keeping the two largest magnitudes of each group of four
    consecutive input channels at every output channel and kernel position."""
    k, c, r, s = weight.shape
    groups = weight.detach().abs().permute(0, 2, 3, 1).reshape(k, r, s, c // 4, 4)
    keep = torch.zeros_like(groups, dtype=torch.bool)
    keep.scatter_(-1, groups.topk(2, dim=-1).indices, True)
    return keep.reshape(k, r, s, c).permute(0, 3, 1, 2).contiguous()


def follows_2_4(weight: np.ndarray) -> bool:
    """Whether a KCRS weight array has at least two zeros in every group of four input channels."""
    k, c, r, s = weight.shape
    if c % 4:
        return False
    groups = np.moveaxis(weight, 1, -1).reshape(k, r, s, c // 4, 4)
    return bool(((groups == 0).sum(-1) >= 2).all())


def sparsify(model: nn.Module, blocks: Sequence[str]) -> list[str]:
    """Hold the 2:4 pattern on every eligible convolution inside the named blocks (module paths, e.g.
    ``layer1.0``); returns the names of the convolutions masked. Call ``make_permanent`` before export."""
    masked = []
    for name, module in model.named_modules():
        if eligible(module) and any(name == block or name.startswith(f"{block}.") for block in blocks):
            prune.custom_from_mask(module, "weight", two_four_mask(module.weight))
            masked.append(name)
    return masked


def make_permanent(model: nn.Module) -> None:
    """Fold the masks into the weights (the model then holds plain parameters with the zeros in place)."""
    for module in model.modules():
        if prune.is_pruned(module) and hasattr(module, "weight_mask"):
            prune.remove(module, "weight")
