"""Quantization-aware distillation: the policy's INT8 blocks train with ONNX Runtime's INT8 simulated.

Export quantizes a block with ONNX Runtime's ``quantize_static`` (``artifacts/ort_int8.py``): QDQ format, weights
INT8 per output channel and symmetric (range -127..127, scale = max|w| / 127, zero point 0) taken from the
convolution with its BatchNorm folded in, activations UINT8 per tensor and asymmetric (MinMax range widened to
include 0, scale = range / 255). In the graph ONNX Runtime writes for a residual block the quantized tensors are
the block's input (read by its first convolution and by the shortcut), each convolution's input (a ReLU that
follows a convolution is fused into it: the quantized tensor is the ReLU's output), a convolution output that no
ReLU follows (the residual add's branch input) and the block's output. ``fake_quantized`` puts a
``torch.fake_quantize_per_tensor_affine`` with a running min/max observer at each of those points (so the
training sees the same rounding and clipping, with straight-through gradients), and re-parametrizes each
convolution's weight as ``fq(w * s) / s`` with ``s = gamma / sqrt(running_var + eps)`` of its BatchNorm: the
BatchNorm that follows then computes exactly ``conv(x, fq(w_folded)) + b_folded`` in eval mode, the folded,
per-channel rounded weight ONNX Runtime runs, while in training it still normalises with the batch's statistics.

A convolution called more than once, a BatchNorm shared between convolutions, or a model fx cannot trace is left
un-faked (logged), never an error: export quantizes it all the same.

Export recalibrates the activation ranges with ONNX Runtime on calibration images, as without fake quantization,
rather than writing the observers' ranges into the graph: the exporter stays the one source of truth for the
graph's scales, and the learned ranges did no better. Measured with ``tools/bench_qat.py`` (ResNet-20 CIFAR-10
checkpoint, every block but the first INT8 and four at half width, 1 epoch over 5,000 images, 1,000 test images,
``tools/results/bench_qat.json``): FP32 student / INT8 engine top-1 77.9% / 78.1% without QAT, 78.2% / 78.3% with
QAT and ONNX Runtime's recalibration, 78.2% / 78.1% with QAT and the learned ranges (``TensorQuantOverrides``).
ResNet-20's INT8 gap is already within the noise of 1,000 images (+-1.3 points) on this policy, so these figures
show QAT costs nothing here, not that it closes a gap.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from ..compute import device_of, to_device
from ..models.discovery import BlockInfo
from ..models.tracing import trace

log = logging.getLogger(__name__)

_RELU_MODULES = (nn.ReLU, nn.ReLU6, nn.Hardtanh)
_RELU_FUNCTIONS = {F.relu, torch.relu, F.relu6, F.hardtanh, torch.relu_}
QUANTIZED = "_hirelc_fake_quantized"  # set on a tensor that an observer has already quantized


class Observer(nn.Module):
    """Running min/max of a tensor (ONNX Runtime's MinMax calibrator: the extremes over every batch seen) and
    its UINT8 fake quantization with that range widened to include 0."""

    def __init__(self):
        super().__init__()
        self.register_buffer("low", torch.tensor(float("inf")))
        self.register_buffer("high", torch.tensor(float("-inf")))
        self.observing = True
        self.quantizing = True

    def reset(self) -> None:
        self.low.fill_(float("inf"))
        self.high.fill_(float("-inf"))

    @property
    def seen(self) -> bool:
        return bool(torch.isfinite(self.low))

    def qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, zero point) as ONNX Runtime computes them from the range (``compute_scale_zp``)."""
        low, high = self.low.clamp(max=0.0), self.high.clamp(min=0.0)
        scale = ((high - low) / 255).clamp(min=torch.finfo(torch.float32).tiny)
        zero = torch.round(-low / scale).clamp(0, 255).to(torch.int32)
        return scale.float(), zero

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A tensor is quantized once in the graph, however many quantized nodes read it (a block's input feeds
        # its first convolution and its shortcut; a block's output is the next INT8 block's input).
        if getattr(x, QUANTIZED, False):
            return x
        if self.observing:
            with torch.no_grad():
                value = x.detach().float()
                self.low.copy_(torch.minimum(self.low, value.min()))
                self.high.copy_(torch.maximum(self.high, value.max()))
        if not (self.seen and self.quantizing):
            return x
        scale, zero = self.qparams()
        out = torch.fake_quantize_per_tensor_affine(x.float(), scale, zero, 0, 255).to(x.dtype)
        setattr(out, QUANTIZED, True)
        return out


class FoldedWeight(nn.Module):
    """Parametrization of a convolution's weight: ``fq(w * s) / s``, the per-output-channel symmetric INT8
    rounding of the BN-folded weight (``s`` from the BatchNorm's running variance; 1 without a BatchNorm)."""

    def __init__(self, bn: nn.BatchNorm2d | None):
        super().__init__()
        self._bn = [bn]  # in a list: the BatchNorm stays a module of the model, not of the parametrization
        self.quantizing = True

    def factor(self, out_channels: int, like: torch.Tensor) -> torch.Tensor:
        bn = self._bn[0]
        if bn is None:
            return torch.ones(out_channels, dtype=like.dtype, device=like.device)
        gamma = bn.weight if bn.affine else torch.ones_like(bn.running_var)
        factor = (gamma / torch.sqrt(bn.running_var + bn.eps)).detach()
        # A channel whose gamma is 0 outputs its bias whatever the weight: any non-zero factor keeps the division
        # finite and the rounding of that channel meaningless, as it is in the folded graph.
        return torch.where(factor.abs() > 1e-12, factor, torch.full_like(factor, 1e-12))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if not self.quantizing:
            return weight
        shape = (-1,) + (1,) * (weight.dim() - 1)
        factor = self.factor(weight.shape[0], weight).view(shape)
        folded = weight * factor
        scale = (folded.detach().abs().flatten(1).amax(1) / 127).clamp(min=torch.finfo(torch.float32).tiny)
        zero = torch.zeros_like(scale, dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(folded, scale.float(), zero, 0, -127, 127) / factor


@dataclass
class FakeQuant:
    """The fake quantization attached to a model: which blocks, convolutions and points it covers, what it left
    un-faked and why. ``detach`` restores the model's plain modules (the trained weights stay)."""

    model: nn.Module
    blocks: list[str] = field(default_factory=list)
    convs: list[str] = field(default_factory=list)
    points: dict[str, Observer] = field(default_factory=dict)  # "module path:input|output" -> observer
    skipped: list[str] = field(default_factory=list)
    _hooks: list = field(default_factory=list)

    def summary(self) -> str:
        text = (f"{len(self.blocks)} INT8 block(s), {len(self.convs)} convolution(s) with BN-folded INT8 "
                f"weights, {len(self.points)} UINT8 activation point(s)")
        return text + (f"; left un-faked: {'; '.join(self.skipped)}" if self.skipped else "")

    def to_dict(self) -> dict:
        """What the manifest records."""
        return {"enabled": bool(self.convs or self.points), "blocks": self.blocks, "convolutions": len(self.convs),
                "activation_points": len(self.points), "skipped": self.skipped,
                "ranges": "recalibrated by ONNX Runtime at export"}

    def ranges(self) -> dict[str, tuple[float, float]]:
        """The observed (min, max) of every activation point."""
        return {name: (float(o.low), float(o.high)) for name, o in self.points.items() if o.seen}

    @contextlib.contextmanager
    def calibrating(self) -> Iterator[None]:
        """Ranges observed afresh with nothing quantized, as ONNX Runtime's calibrator observes the FP32 graph."""
        for observer in self.points.values():
            observer.reset()
            observer.observing = True
        self._quantizing(False)
        try:
            yield
        finally:
            self._quantizing(True)

    def _quantizing(self, on: bool) -> None:
        for observer in self.points.values():
            observer.quantizing = on
        for name in self.convs:
            for parametrization in self.model.get_submodule(name).parametrizations.weight:
                parametrization.quantizing = on

    @torch.no_grad()
    def calibrate(self, batches: Iterable[torch.Tensor]) -> None:
        """Reset the ranges and observe them over ``batches`` with the model in eval mode."""
        self.model.eval()
        with self.calibrating():
            for x in batches:
                self.model(to_device(torch.as_tensor(x), device_of(self.model)))

    def freeze(self, frozen: bool = True) -> None:
        """Stop (or resume) updating the ranges."""
        for observer in self.points.values():
            observer.observing = not frozen

    def detach(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()
        for name in self.convs:
            conv = self.model.get_submodule(name)
            if parametrize.is_parametrized(conv, "weight"):
                parametrize.remove_parametrizations(conv, "weight", leave_parametrized=False)


def _is_relu(gm: fx.GraphModule, node: fx.Node) -> bool:
    if node.op == "call_module":
        return isinstance(gm.get_submodule(node.target), _RELU_MODULES)
    if node.op == "call_function":
        return node.target in _RELU_FUNCTIONS
    return node.op == "call_method" and node.target in ("relu", "relu_", "clamp", "clamp_")


def _structure(model: nn.Module) -> tuple[dict[str, str], set[str], set[str]]:
    """From the model's fx graph: each convolution's BatchNorm (where the convolution's only user is one), the
    modules whose output no ReLU-like activation takes (ONNX Runtime quantizes them where their consumer is
    quantized; the others' quantized tensor is the activation's output), and modules called more than once."""
    gm = trace(model, "fake quantization")
    calls: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    repeated = {name for name, count in calls.items() if count > 1}
    bn_of, bn_users = {}, {}
    unactivated = set()
    for node in gm.graph.nodes:
        if node.op != "call_module":
            continue
        module = gm.get_submodule(node.target)
        users = list(node.users)
        if isinstance(module, nn.Conv2d) and len(users) == 1 and users[0].op == "call_module" \
                and isinstance(gm.get_submodule(users[0].target), nn.BatchNorm2d):
            bn_of[node.target] = users[0].target
            bn_users[users[0].target] = bn_users.get(users[0].target, 0) + 1
        if isinstance(module, (nn.Conv2d, nn.BatchNorm2d)) and not all(_is_relu(gm, u) for u in users):
            unactivated.add(node.target)
    shared = {bn for bn, count in bn_users.items() if count > 1}
    return {c: b for c, b in bn_of.items() if b not in shared}, unactivated, repeated


def _inside(path: str, modules: Sequence[str]) -> bool:
    return any(path == m or path.startswith(m + ".") for m in modules)


def attach(model: nn.Module, blocks: Sequence[BlockInfo]) -> FakeQuant:
    """Fake-quantize ``blocks`` of ``model`` in place (see the module docstring); FP32 blocks are untouched."""
    fq = FakeQuant(model)
    if not blocks:
        return fq
    try:
        bn_of, unactivated, repeated = _structure(model)
    except Exception as exc:  # any tracing failure leaves the model as it is: export quantizes it regardless
        fq.skipped.append(f"every block: the model cannot be traced ({type(exc).__name__}: {exc})")
        log.warning("fake quantization left out: %s", fq.skipped[-1])
        return fq
    convs_of = {}
    for block in blocks:
        modules = list(block.modules or (block.name,))
        if any(m in repeated for m in modules):
            fq.skipped.append(f"{block.name}: a module of the block runs more than once")
            continue
        convs = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d) and _inside(name, modules)]
        bad = [c for c in convs if c in repeated]
        if bad or not convs:
            fq.skipped.append(f"{block.name}: " + (f"{', '.join(bad)} runs more than once" if bad
                                                   else "no convolution"))
            continue
        convs_of[block.name] = (modules, convs)
    for block in blocks:
        if block.name not in convs_of:
            continue
        modules, convs = convs_of[block.name]
        fq.blocks.append(block.name)
        first, last = model.get_submodule(modules[0]), model.get_submodule(modules[-1])
        _point(fq, first, f"{modules[0]}:input", pre=True)
        for name in convs:
            conv = model.get_submodule(name)
            bn_name = bn_of.get(name)
            bn = model.get_submodule(bn_name) if bn_name else None
            parametrize.register_parametrization(conv, "weight", FoldedWeight(bn))
            fq.convs.append(name)
            _point(fq, conv, f"{name}:input", pre=True)
            producer = bn_name or name
            if producer in unactivated and producer != modules[-1]:
                _point(fq, model.get_submodule(producer), f"{producer}:output", pre=False)
        _point(fq, last, f"{modules[-1]}:output", pre=False)
    for reason in fq.skipped:
        log.warning("fake quantization left out %s", reason)
    return fq


def _point(fq: FakeQuant, module: nn.Module, name: str, pre: bool) -> None:
    """An observer on ``module``'s first input (``pre``) or output, once per point."""
    if name in fq.points:
        return
    observer = Observer().to(next(iter(fq.model.parameters())).device)
    fq.points[name] = observer
    if pre:
        fq._hooks.append(module.register_forward_pre_hook(
            lambda _m, args, o=observer: (o(args[0]), *args[1:])))
    else:
        fq._hooks.append(module.register_forward_hook(lambda _m, _args, out, o=observer: o(out)))


@contextlib.contextmanager
def fake_quantized(model: nn.Module, blocks: Sequence[BlockInfo]) -> Iterator[FakeQuant]:
    """``model`` with ``blocks`` fake-quantized for the duration (nothing when ``blocks`` is empty); the plain
    modules come back afterwards, with the weights trained meanwhile."""
    fq = attach(model, blocks)
    try:
        yield fq
    finally:
        fq.detach()
