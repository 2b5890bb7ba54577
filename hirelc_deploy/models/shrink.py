"""Shrinking a model to a width configuration of its discovered blocks: removal (a block replaced by its shortcut)
and physical channel pruning through torch-pruning, with grouped convolutions pruned by whole groups."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.fx as fx
import torch_pruning as tp
from torch import nn

from ..compute import device_of
from .discovery import BlockInfo, is_grouped
from .tracing import branch_convs, nonnegative, residual_join, trace


def remove_unit(model: nn.Module, unit: BlockInfo) -> None:
    """Replace the unit's module by its shortcut alone (physically: the branch's parameters leave the model).

    The unit's module becomes an fx ``GraphModule`` computing ``act(shortcut(x))``; the activation is dropped
    where the shortcut is provably non-negative (a ReLU output passed through, or subsampled and zero-padded),
    since ReLU is then the identity.
    """
    if not unit.removable:
        raise ValueError(f"{unit.name}: has no shortcut to replace it and cannot be removed")
    module = model.get_submodule(unit.name)
    found = residual_join(gm := trace(module, unit.name), branch_convs(module, unit.name, unit.groups))
    if isinstance(found, str):
        raise ValueError(f"{unit.name}: {found}")
    found.add.replace_all_uses_with(found.shortcut)
    if nonnegative(gm, found.shortcut, unit.input_nonnegative):
        for act in found.activations:
            act.replace_all_uses_with(act.args[0])
    gm.graph.eliminate_dead_code()
    gm.recompile()
    gm.delete_all_unused_submodules()
    parent, _, child = unit.name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, gm)


Importance = Callable[[int, int, nn.Conv2d], torch.Tensor]  # (unit index, group index, root conv) -> scores


def l1_importance(_unit: int, _group: int, conv: nn.Conv2d) -> torch.Tensor:
    """Channel scores by the L1 norm of the root convolution's filters (higher = keep)."""
    return conv.weight.detach().abs().flatten(1).sum(1)


def apply_widths(model: nn.Module, units: Sequence[BlockInfo], widths: Sequence[int], input_shape: Sequence[int],
                 importance: Importance = l1_importance) -> nn.Module:
    """Shrink ``model`` (in place) to ``widths``: width 0 removes a unit (its shortcut stays), a smaller width
    removes each group's least important channels physically (torch-pruning follows every coupled layer)."""
    if len(widths) != len(units):
        raise ValueError(f"{len(widths)} widths for {len(units)} blocks")
    for unit, width in zip(units, widths):
        if int(width) == 0 and not isinstance(model.get_submodule(unit.name), fx.GraphModule):  # not yet removed
            remove_unit(model, unit)
    # Tracing needs shapes only; zeros keep the global RNG untouched (a resumed search replays the same draws).
    deps = None
    for index, (unit, width) in enumerate(zip(units, widths)):
        if int(width) == 0 or not unit.prunable:
            continue
        grouped_done = False
        for g, (group, keep) in enumerate(zip(unit.groups, unit.group_widths(int(width)))):
            conv = model.get_submodule(group.root)
            if conv.out_channels <= keep or (group.step > 1 and grouped_done):
                continue
            deps = deps or tp.DependencyGraph().build_dependency(model, example_inputs=torch.zeros(
                *input_shape, device=device_of(model)))
            if group.step > 1:  # every group around the grouped convolution goes with the first
                _prune_whole_groups(model, deps, unit, g, keep, importance(index, g, conv))
                grouped_done = True
                continue
            idxs = torch.argsort(importance(index, g, conv))[: conv.out_channels - keep].tolist()
            deps.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=idxs).prune()
    return model


def _prune_whole_groups(model: nn.Module, deps: tp.DependencyGraph, unit: BlockInfo, first: int, keep: int,
                        scores: torch.Tensor) -> None:
    """Prune a unit built around a grouped convolution by whole convolution groups, the same ones in every
    channel group that touches it: torch-pruning prunes every other coupled layer (its index pruning of a
    grouped convolution would break the groups), and the grouped convolution loses those groups here."""
    step = unit.groups[first].step
    current = model.get_submodule(unit.groups[first].root).out_channels // step
    drop = sorted(torch.argsort(scores.view(current, step).sum(1))[: current - keep // step].tolist())
    plans = []
    for group in unit.groups:
        if group.step == 1:
            continue
        root = model.get_submodule(group.root)
        per = root.out_channels // current
        idxs = [c for d in drop for c in range(d * per, (d + 1) * per)]
        plans.append(deps.get_pruning_group(root, tp.prune_conv_out_channels, idxs=idxs))
    grouped: list[nn.Conv2d] = []
    for plan in plans:
        for dep, idxs in plan:
            layer = dep.target.module
            if is_grouped(layer):
                grouped += [] if any(layer is g for g in grouped) else [layer]
            else:
                dep(idxs)
    for layer in grouped:
        _drop_conv_groups(layer, drop)


def _drop_conv_groups(layer: nn.Conv2d, drop: list[int]) -> None:
    out_per, in_per = layer.out_channels // layer.groups, layer.in_channels // layer.groups
    keep = [g for g in range(layer.groups) if g not in drop]
    rows = torch.tensor([g * out_per + i for g in keep for i in range(out_per)])
    layer.weight = nn.Parameter(layer.weight.detach()[rows].clone())
    if layer.bias is not None:
        layer.bias = nn.Parameter(layer.bias.detach()[rows].clone())
    layer.groups, layer.out_channels, layer.in_channels = len(keep), len(keep) * out_per, len(keep) * in_per


def check_widths(units: Sequence[BlockInfo], widths: Sequence[int] | None) -> list[int]:
    """A width configuration checked against the units; ``None`` means full width everywhere."""
    if widths is None:
        return [u.full_width for u in units]
    widths = [int(w) for w in widths]
    if len(widths) != len(units):
        raise ValueError(f"width configuration has {len(widths)} entries, the model has {len(units)} blocks")
    for i, (w, u) in enumerate(zip(widths, units)):
        if w == 0 and u.removable:
            continue
        if not 1 <= w <= u.full_width:
            raise ValueError(f"block {i}: inner width {w} outside {'0' if u.removable else '1'}..{u.full_width}")
        if not u.prunable and w != u.full_width:
            raise ValueError(f"block {i}: inner width is tied to the block input and must stay {u.full_width}")
        if w % u.step and w != u.full_width:
            raise ValueError(f"block {i}: inner width {w} is not a multiple of {u.step} (whole convolution groups)")
    return widths
