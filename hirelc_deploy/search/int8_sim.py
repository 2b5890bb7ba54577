"""INT8 simulated in PyTorch for the accuracy proxy, mirroring what export does with ONNX Runtime.

Export quantizes a block with ORT static QDQ: per-channel symmetric INT8 weights (scale = 2 max|w_c| / 255),
per-tensor asymmetric UINT8 activations whose MinMax range (widened to include 0) is calibrated on the FP32
graph. Here the weights of every convolution in an INT8 block are rounded the same way, and the inputs of its
convolutions and the block's output are fake-quantized with ranges recorded in one FP32 pass over calibration
images. ORT folds BatchNorm into the convolution before quantizing; folding scales each output channel, so
per-channel rounding of the unfolded weight gives the same relative error. The simulation is an approximation
(the residual Add's second input is not rounded), used only to rank candidates: exported engines are always
measured for real.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..compute import device_of, to_device


def _fake_quant_weight(weight: torch.Tensor) -> torch.Tensor:
    absmax = weight.abs().flatten(1).amax(1).clamp_min(1e-12)
    scale = (2 * absmax / 255).view(-1, *([1] * (weight.dim() - 1)))
    return torch.clamp(torch.round(weight / scale), -128, 127) * scale


def _fake_quant_activation(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    low, high = min(low, 0.0), max(high, 0.0)
    scale = max(high - low, 1e-12) / 255
    zero = round(-low / scale)
    return (torch.clamp(torch.round(x / scale) + zero, 0, 255) - zero) * scale


class _Range:
    def __init__(self):
        self.low, self.high = float("inf"), float("-inf")

    def observe(self, x: torch.Tensor) -> None:
        self.low = min(self.low, float(x.min()))
        self.high = max(self.high, float(x.max()))


@torch.no_grad()
def simulate_int8(model: nn.Module, blocks: Sequence[Sequence[nn.Module]], calibration: torch.Tensor) -> nn.Module:
    """Make ``blocks`` of ``model`` (each a block's modules, in execution order) compute as INT8 would (in place);
    ranges come from ``calibration``."""
    points: list[tuple[nn.Module, str, _Range]] = []
    for modules in blocks:
        points += [(conv, "input", _Range()) for module in modules for conv in module.modules()
                   if isinstance(conv, nn.Conv2d)]
        points.append((modules[-1], "output", _Range()))
    recorders = [
        module.register_forward_pre_hook(lambda _m, args, r=rng: r.observe(args[0])) if where == "input"
        else module.register_forward_hook(lambda _m, _a, out, r=rng: r.observe(out))
        for module, where, rng in points
    ]
    model.eval()
    model(to_device(calibration, device_of(model)))
    for handle in recorders:
        handle.remove()
    for module, where, rng in points:
        if where == "input":
            module.register_forward_pre_hook(
                lambda _m, args, r=rng: (_fake_quant_activation(args[0], r.low, r.high), *args[1:]))
            module.weight.copy_(_fake_quant_weight(module.weight))
        else:
            module.register_forward_hook(lambda _m, _a, out, r=rng: _fake_quant_activation(out, r.low, r.high))
    return model
