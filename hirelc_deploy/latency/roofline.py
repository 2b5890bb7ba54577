"""A *predicted* latency table from a roofline model, for planning a GPU budget before the GPU is at hand.

Every table made here has ``kind = "predicted"``; it is never a measurement, and a table measured on the
device replaces it (``hirelc profile --predict`` refuses to overwrite a measured one).

The model: TensorRT fuses each convolution with its BatchNorm, activation and (for the second convolution of a
residual block) the residual add, so a block runs one kernel per convolution. A kernel takes the longer of
its compute time (2 x MACs at ``compute_efficiency`` x the GPU's dense peak for the precision) and its memory
time (input activations, weights and output activations, plus the shortcut tensor the fused add reads, at the
precision's bytes per element, over the memory bandwidth), plus ``launch_us``. Fewer channels never cost more
(MACs and bytes only shrink) and a lower precision never costs more (peaks only grow, bytes only shrink). A
precision change between blocks costs a reformat kernel: read and write the boundary tensor. The stem and head
are timed in FP32 (conservative), and the conversions into and out of them are taken as fused into their kernels.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from ..errors import TargetError
from ..models import BlockInfo, ModelSpec
from ..precision import Precision
from ..targets import Target
from .profile import model_input_shape
from .table import BlockLatency, LatencyTable, normalize_precisions, transition_key

BYTES_PER_ELEMENT = {Precision.FP32: 4, Precision.FP16: 2, Precision.INT8: 1, Precision.FP8: 1}


@dataclass(frozen=True)
class Kernel:
    """One fused convolution (or linear) layer: multiply-accumulates and elements it reads and writes."""

    macs: int
    elements: int  # input activations + weights + output activations (+ the shortcut a fused add reads)


def _kernels(model: nn.Module, infos: Sequence[BlockInfo], widths: Sequence[int], input_shape: Sequence[int]
             ) -> tuple[list[list[Kernel]], list[Kernel], list[int]]:
    """Kernels per block, kernels outside blocks (stem, head), and the element count of each block's input
    (block 0's input, ..., and the head's input last): the tensors precision changes reformat."""
    members = [[model.get_submodule(m) for m in info.modules] for info in infos]
    owner = {id(sub): i for i, modules in enumerate(members) for module in modules for sub in module.modules()}
    per_block: list[list[Kernel]] = [[] for _ in infos]
    outside: list[Kernel] = []
    boundaries: list[int] = [0] * (len(infos) + 1)

    def on_layer(module, inputs, output):
        x = inputs[0]
        weight = module.weight.numel()
        if isinstance(module, nn.Conv2d):
            macs = output.numel() * (module.in_channels // module.groups) * module.kernel_size[0] * module.kernel_size[1]
        else:
            macs = output.numel() * module.in_features
        kernel = Kernel(int(macs), int(x.numel() + weight + output.numel()))
        index = owner.get(id(module))
        (outside if index is None else per_block[index]).append(kernel)

    def on_input(index):
        def hook(module, inputs, output):
            boundaries[index] = int(inputs[0].numel())
        return hook

    def on_output(index):
        def hook(module, inputs, output):
            boundaries[index + 1] = int(output.numel())
        return hook

    handles = [m.register_forward_hook(on_layer) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    handles += [modules[0].register_forward_hook(on_input(i)) for i, modules in enumerate(members)]
    handles += [modules[-1].register_forward_hook(on_output(i)) for i, modules in enumerate(members)]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(*input_shape))
    finally:
        for handle in handles:
            handle.remove()
    for index, kernels in enumerate(per_block):
        if kernels and infos[index].removable and widths[index] > 0:
            # The residual add is fused into the branch's last convolution, which then also reads the shortcut.
            last = kernels[-1]
            kernels[-1] = Kernel(last.macs, last.elements + boundaries[index + 1])
    return per_block, outside, boundaries


def kernel_ms(kernel: Kernel, precision: str, target: Target) -> float:
    """Roofline time of one fused kernel (ms)."""
    roof = target.roofline
    compute_s = 2.0 * kernel.macs / (roof.peak_tops[precision] * 1e12 * roof.compute_efficiency)
    memory_s = kernel.elements * BYTES_PER_ELEMENT[precision] / (roof.memory_bandwidth_gbs * 1e9)
    return 1e3 * max(compute_s, memory_s) + roof.launch_us * 1e-3


def reformat_ms(elements: int, source: str, destination: str, target: Target) -> float:
    """A precision change between blocks: one kernel reading the tensor in one precision, writing the other."""
    moved = elements * (BYTES_PER_ELEMENT[source] + BYTES_PER_ELEMENT[destination])
    return 1e3 * moved / (target.roofline.memory_bandwidth_gbs * 1e9) + target.roofline.launch_us * 1e-3


def predict_table(spec: ModelSpec, target: Target) -> LatencyTable:
    """The roofline table of ``model`` on ``target`` over the target's width grid and precisions."""
    if target.roofline is None:
        raise TargetError(f"{target.path or target.name}: no [roofline] section (GPU peak throughput and memory "
                          "bandwidth), so a latency table cannot be predicted for it")
    missing = [p for p in target.precisions if p not in BYTES_PER_ELEMENT]
    if missing:
        raise TargetError(f"{target.path or target.name}: no roofline model for precision(s) {', '.join(missing)}")
    infos = spec.blocks()
    shape = model_input_shape(spec, target)
    grids = target.width_grid(infos)
    latency = [{p: [] for p in target.precisions} for _ in infos]
    for level in range(max(len(g) for g in grids)):
        # One network per width level: block i at its level-th width (the widest once its grid is exhausted).
        # The last level is the full-width model, whose boundary tensors and stem/head kernels are kept (they do
        # not depend on inner widths).
        widths = [g[min(level, len(g) - 1)] for g in grids]
        per_block, outside, boundaries = _kernels(spec.build(widths), infos, widths, shape)
        for i, grid in enumerate(grids):
            if level < len(grid):
                for p in target.precisions:
                    precision = normalize_precisions((widths[i],), (p,))[0]
                    latency[i][p].append(sum(kernel_ms(k, precision, target) for k in per_block[i]))
    rows = [BlockLatency(b.name, b.full_width, grid, lat, {p: [0.0] * len(grid) for p in lat})
            for b, grid, lat in zip(infos, grids, latency)]
    # The stem and head take the precision of the block beside them (the conversion fuses into their kernel),
    # so only boundaries between blocks carry a reformat.
    transitions = [{transition_key(a, b): 0.0 if j in (0, len(boundaries) - 1) else reformat_ms(n, a, b, target)
                    for a in target.precisions for b in target.precisions if a != b}
                   for j, n in enumerate(boundaries)]
    roof = target.roofline
    return LatencyTable(
        model=spec.name, target=target.name, kind="predicted",
        fingerprint={"predicted_for": roof.gpu, "runtime": target.backend, "batch_size": target.batch_size},
        input_shape=list(shape), fixed_ms=sum(kernel_ms(k, Precision.FP32, target) for k in outside),
        blocks=rows, transitions_ms=transitions,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        method={"kind": "roofline (predicted, not measured)", "gpu": roof.gpu, "peak_tops": roof.peak_tops,
                "memory_bandwidth_gbs": roof.memory_bandwidth_gbs, "compute_efficiency": roof.compute_efficiency,
                "launch_us": roof.launch_us, "sparsity_2_4": f"{roof.sparsity_2_4} (not modelled: dense peaks only)",
                "see": "hirelc_deploy/latency/roofline.py"},
    )
