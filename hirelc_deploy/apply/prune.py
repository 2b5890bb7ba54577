"""Physical channel pruning with torch-pruning's dependency graph, and BatchNorm recalibration.

Channels are removed, not masked: after ``prune_to_widths`` the convolutions really have fewer channels, so
the exported graph is smaller and faster. ``models.shrink.apply_widths`` does the surgery (torch-pruning
follows each removed channel into every coupled layer; a block at width 0 is replaced by its shortcut); this
module chooses which channels go: the lowest Fisher saliency, or the lowest L1 weight magnitude.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import nn

from ..compute import device_of, to_device
from ..models import BlockInfo
from ..models.shrink import apply_widths, check_widths, l1_importance
from ..sensitivity import Sensitivity


def _importance(sensitivity: Sensitivity | None, criterion: str):
    """Channel scores of a block's group (higher = keep): the sensitivity's, where it has them for the group's
    current channels, else the L1 of the root convolution's filters."""
    def scores(index: int, group: int, conv: nn.Conv2d) -> torch.Tensor:
        if sensitivity is not None:
            row = sensitivity.blocks[index]
            found = row.channel_fisher if criterion == "fisher" else row.channel_l1
            if group < len(found) and len(found[group]) == conv.out_channels:
                return torch.tensor(found[group])
        return l1_importance(index, group, conv)
    return scores


def prune_to_widths(model: nn.Module, blocks: Sequence[BlockInfo], widths: Sequence[int], input_shape: Sequence[int],
                    sensitivity: Sensitivity | None = None, criterion: str = "fisher") -> nn.Module:
    """Remove the least important inner channels of each block until it has ``widths[i]`` of them.

    ``blocks`` are the model's units (``ModelSpec.blocks()``); ``criterion`` is ``fisher`` (Fisher saliency
    from ``sensitivity``) or ``l1`` (weight magnitude). The model is changed in place and returned.
    """
    if criterion not in ("fisher", "l1"):
        raise ValueError(f"unknown pruning criterion {criterion!r} (fisher or l1)")
    return apply_widths(model, blocks, check_widths(blocks, widths), input_shape, _importance(sensitivity, criterion))


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor], max_images: int = 512) -> nn.Module:
    """Re-estimate every BatchNorm's running statistics on training images (pruning shifts them).

    Statistics are reset and accumulated as a plain average over the batches (momentum None), in train mode
    without gradients, then the model goes back to eval mode.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    device = device_of(model)
    seen = 0
    for images in batches:
        model(to_device(images, device))
        seen += len(images)
        if seen >= max_images:
            break
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    return model.eval()
