"""Fisher-information sensitivity per block, and per-channel importance inside each block.

The empirical Fisher diagonal is the mean over held-out training images of the squared per-sample gradient
of the loss. A block's sensitivity is its Fisher trace divided by its parameter count, so a block is not
called sensitive merely for being big. A channel's importance is the Fisher saliency of every parameter
indexed by it (sum of F * theta^2 / 2, the second-order loss increase if the channel is removed); L1
magnitude of the same parameters is kept as the cheap alternative. A block's INT8 saliency is the same
second-order estimate for the noise per-channel symmetric INT8 rounding adds to its convolution weights
(variance step^2 / 12 with step = max|w_c| / 127); activation rounding is not in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, ClassVar, Iterable, Sequence

import torch
import torch.nn.functional as F
import torch_pruning as tp
from torch import nn

from .compute import device_of, to_device
from .errors import InputError
from .models import BlockInfo
from .records import Record

SCHEMA_VERSION = 1


@dataclass
class BlockSensitivity:
    """Sensitivity of one block and the importance of each of its prunable channel groups."""

    name: str
    params: int
    fisher_trace: float
    fisher_per_param: float
    relative: float  # fisher_per_param / the largest over blocks, in [0, 1]
    channel_fisher: list[list[float]] = field(default_factory=list)  # one list per prunable group
    channel_l1: list[list[float]] = field(default_factory=list)
    int8_saliency: float = 0.0  # estimated loss increase from INT8 weight rounding (0 in files that predate it)


@dataclass
class Sensitivity(Record):
    """Per-block Fisher sensitivity of a model, computed on ``samples`` held-out training images."""

    what: ClassVar[str] = "sensitivity file"
    model: str
    samples: int
    blocks: list[BlockSensitivity]
    schema_version: int = SCHEMA_VERSION


def empirical_fisher(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], max_samples: int,
                     on_sample: Callable[[], None] | None = None) -> tuple[dict[str, torch.Tensor], int]:
    """Diagonal empirical Fisher (mean squared per-sample gradient of the cross-entropy) per parameter."""
    model.eval()
    device = device_of(model)
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    fisher = {n: torch.zeros_like(p) for n, p in params.items()}
    seen = 0
    for images, labels in batches:
        for x, y in zip(to_device(images, device), to_device(labels, device)):
            if seen >= max_samples:
                break
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x.unsqueeze(0)), y.view(1)).backward()
            for n, p in params.items():
                if p.grad is not None:
                    fisher[n] += p.grad.detach() ** 2
            seen += 1
            if on_sample:
                on_sample()
        if seen >= max_samples:
            break
    if seen == 0:
        raise InputError("sensitivity: the data gave no samples")
    model.zero_grad(set_to_none=True)
    return {n: f / seen for n, f in fisher.items()}, seen


def _channel_scores(group: list[tuple[nn.Module, str, int]], fisher_of: dict[int, torch.Tensor]
                    ) -> tuple[list[float], list[float]]:
    fisher_score, l1 = None, None
    for module, pname, dim in group:
        weight = getattr(module, pname).detach()
        saliency = 0.5 * fisher_of[id(getattr(module, pname))] * weight ** 2
        dims = [d for d in range(weight.dim()) if d != dim]
        s = saliency.sum(dim=dims) if dims else saliency
        a = weight.abs().sum(dim=dims) if dims else weight.abs()
        fisher_score = s if fisher_score is None else fisher_score + s
        l1 = a if l1 is None else l1 + a
    return fisher_score.tolist(), l1.tolist()


def channel_params(model: nn.Module, deps: tp.DependencyGraph, root: str) -> list[tuple[nn.Module, str, int]]:
    """Every (module, parameter, dim) indexed by the output channels of the convolution ``root``: what
    torch-pruning's dependency graph would prune with them (a grouped convolution's input, indexed per group,
    is left out)."""
    conv = model.get_submodule(root)
    found = []
    for dep, _ in deps.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=[0]):
        module = dep.target.module
        if not isinstance(module, nn.Module):
            continue
        dim = 0 if deps.is_out_channel_pruning_fn(dep.handler) else 1
        for name, param in module.named_parameters(recurse=False):
            if param.dim() > dim and param.shape[dim] == conv.out_channels and (dim == 0 or name == "weight"):
                found.append((module, name, dim))
    return found


def _int8_saliency(modules: Sequence[nn.Module], fisher_of: dict[int, torch.Tensor]) -> float:
    total = 0.0
    for conv in (m for module in modules for m in module.modules() if isinstance(m, nn.Conv2d)):
        weight = conv.weight.detach()
        step = weight.abs().flatten(1).amax(1) / 127.0
        noise = (step ** 2 / 12.0).view(-1, *([1] * (weight.dim() - 1)))
        total += float(0.5 * (fisher_of[id(conv.weight)] * noise).sum())
    return total


def compute_sensitivity(model: nn.Module, blocks: Sequence[BlockInfo], input_shape: Sequence[int], model_name: str,
                        batches: Iterable[tuple[torch.Tensor, torch.Tensor]], max_samples: int = 256,
                        on_sample: Callable[[], None] | None = None) -> Sensitivity:
    """Fisher sensitivity of every block (``blocks``: the units of ``model``, whose input is ``input_shape``,
    C x H x W) and importance of every prunable channel."""
    fisher, seen = empirical_fisher(model, batches, max_samples, on_sample)
    named = dict(model.named_parameters())
    fisher_of = {id(named[n]): f for n, f in fisher.items()}
    deps = tp.DependencyGraph().build_dependency(model, example_inputs=torch.zeros(1, *input_shape,
                                                                                 device=device_of(model)))
    rows = []
    for block in blocks:
        modules = [model.get_submodule(m) for m in block.modules]
        block_params = [p for module in modules for p in module.parameters()]
        count = sum(p.numel() for p in block_params)
        trace = float(sum(fisher_of[id(p)].sum() for p in block_params if id(p) in fisher_of))
        scores = [_channel_scores(channel_params(model, deps, g.root), fisher_of) for g in block.groups]
        rows.append(BlockSensitivity(block.name, count, trace, trace / max(count, 1), 0.0,
                                     [s for s, _ in scores], [a for _, a in scores],
                                     _int8_saliency(modules, fisher_of)))
    top = max((r.fisher_per_param for r in rows), default=0.0) or 1.0
    for r in rows:
        r.relative = r.fisher_per_param / top
    return Sensitivity(model_name, seen, rows)
