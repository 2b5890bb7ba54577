"""Physical channel pruning with torch-pruning's dependency graph, and BatchNorm recalibration.

Channels are removed, not masked: after ``prune_to_widths`` the convolutions really have fewer channels, so
the exported graph is smaller and faster. torch-pruning's dependency graph follows each removed output
channel into the BatchNorm and the next convolution's input (and through depthwise convolutions). A block
pruned to width 0 loses its whole residual branch (its modules are deleted) before the graph is built.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
import torch_pruning as tp
from torch import nn

from ..models import CompressibleBlock
from ..sensitivity import Sensitivity


def _importance(block: CompressibleBlock, group: int, sensitivity: Sensitivity | None, index: int,
                criterion: str) -> torch.Tensor:
    """Scores of a block's channel group (higher = keep); L1 of the channel's weights when no Fisher."""
    if sensitivity is not None:
        row = sensitivity.blocks[index]
        scores = row.channel_fisher if criterion == "fisher" else row.channel_l1
        if group < len(scores) and len(scores[group]) == block.prune_roots()[group].out_channels:
            return torch.tensor(scores[group])
    conv = block.prune_roots()[group]
    return conv.weight.detach().abs().flatten(1).sum(1)


def prune_to_widths(model: nn.Module, widths: Sequence[int], input_shape: Sequence[int],
                    sensitivity: Sensitivity | None = None, criterion: str = "fisher") -> nn.Module:
    """Remove the least important inner channels of each block until it has ``widths[i]`` of them.

    ``criterion`` is ``fisher`` (Fisher saliency from ``sensitivity``) or ``l1`` (weight magnitude). The model
    is changed in place and returned.
    """
    if criterion not in ("fisher", "l1"):
        raise ValueError(f"unknown pruning criterion {criterion!r} (fisher or l1)")
    blocks = [m for m in model.modules() if isinstance(m, CompressibleBlock)]
    if len(widths) != len(blocks):
        raise ValueError(f"{len(widths)} widths for {len(blocks)} blocks")
    for block, width in zip(blocks, widths):
        if int(width) == 0 and not block.removed:
            block.remove_branch()
    # Tracing needs shapes only; zeros rather than random numbers keep the global RNG untouched, so a search
    # proposes the same configurations whether an evaluation is computed or replayed from a resumed run.
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.zeros(*input_shape))
    for index, (block, width) in enumerate(zip(blocks, widths)):
        for group, conv in enumerate(block.prune_roots()):
            remove = conv.out_channels - int(width)
            if remove <= 0:
                continue
            scores = _importance(block, group, sensitivity, index, criterion)
            idxs = torch.argsort(scores)[:remove].tolist()
            graph.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=idxs).prune()
        block.inner_width = min(block.inner_width, int(width)) if block.prunable else block.inner_width
    return model


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
    seen = 0
    for images in batches:
        model(images)
        seen += len(images)
        if seen >= max_images:
            break
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    return model.eval()
