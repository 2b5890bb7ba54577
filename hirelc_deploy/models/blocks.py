"""Blocks: the units the search compresses, and their prunable inner channels.

A block keeps its input and output width whatever happens inside it, so blocks can be shrunk independently:
the search changes a block's *inner* width (the channels between its first and last convolution) and its
precision, never the tensors that flow between blocks.

Inner width 0 removes a residual block's branch altogether, leaving only its shortcut (depth pruning). Narrowing
alone has a floor: on small inputs each block's kernels cost launch and memory traffic that no channel count
removes (a 4-channel ResNet-56 block still costs 60-70% of a 16-channel one), so latency budgets below about 0.4x
of the uncompressed model are only reachable by removing blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .naming import onnx_scope


@dataclass(frozen=True)
class BlockInfo:
    """Static description of one block of a model."""

    index: int
    name: str  # module path, e.g. "layer1.0"
    kind: str  # "basic", "bottleneck" or "inverted_residual"
    in_channels: int
    out_channels: int
    inner_width: int  # inner channels of this instance
    full_width: int  # inner channels of the uncompressed architecture
    prunable: bool  # False where the inner channels are tied to the block's input (MobileNetV2 t=1)
    removable: bool = False  # True where the block has a shortcut that can stand in for it (inner width 0)

    @property
    def onnx_prefix(self) -> str:
        """Prefix the TorchScript ONNX exporter gives every node inside this block (``/layer1/layer1.0/``)."""
        return onnx_scope(self.name)


class CompressibleBlock(nn.Module):
    """Base class of every block type: records its widths so the model can describe itself.

    Subclasses name their prunable channel groups: ``prune_roots`` are the convolutions whose output
    channels are the inner channels (torch-pruning follows the dependencies from there), and
    ``channel_params`` lists, per group, every (module, parameter, dim) indexed by those channels, which is
    what channel importance is computed over.

    Subclasses that can be removed list their residual branch in ``branch_modules``; ``remove_branch`` deletes
    those modules and the block's forward then returns its shortcut alone.
    """

    kind = "block"
    branch_modules: tuple[str, ...] = ()

    def prune_roots(self) -> list[nn.Conv2d]:
        raise NotImplementedError

    def channel_params(self) -> list[list[tuple[nn.Module, str, int]]]:
        raise NotImplementedError

    def __init__(self, in_channels: int, out_channels: int, inner_width: int, full_width: int, prunable: bool = True,
                 removable: bool = False):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.inner_width = inner_width
        self.full_width = full_width
        self.prunable = prunable
        self.removable = removable

    @property
    def removed(self) -> bool:
        return self.inner_width == 0

    def remove_branch(self) -> None:
        """Delete the residual branch (physically: its parameters leave the model); only the shortcut remains."""
        if not self.removable:
            raise ValueError(f"{type(self).__name__} has no shortcut to replace it and cannot be removed")
        for name in self.branch_modules:
            if hasattr(self, name):
                delattr(self, name)
        self.inner_width = 0


def conv_bn_conv(first: nn.Conv2d, norm: nn.BatchNorm2d, second: nn.Conv2d) -> list[tuple[nn.Module, str, int]]:
    """The parameters indexed by the channels between two convolutions joined by a BatchNorm."""
    return [(first, "weight", 0), (norm, "weight", 0), (norm, "bias", 0), (second, "weight", 1)]


class TwoConvBlock(CompressibleBlock):
    """A block whose inner channels are conv1's outputs, normalised by bn1 and read by conv2."""

    branch_modules = ("conv1", "bn1", "conv2", "bn2")

    def prune_roots(self) -> list[nn.Conv2d]:
        return [] if self.removed else [self.conv1]

    def channel_params(self) -> list[list[tuple[nn.Module, str, int]]]:
        return [] if self.removed else [conv_bn_conv(self.conv1, self.bn1, self.conv2)]


def describe_blocks(model: nn.Module) -> list[BlockInfo]:
    """List the compressible blocks of ``model`` in execution order."""
    found = [(name, m) for name, m in model.named_modules() if isinstance(m, CompressibleBlock)]
    return [
        BlockInfo(
            index=i,
            name=name,
            kind=m.kind,
            in_channels=m.in_channels,
            out_channels=m.out_channels,
            inner_width=m.inner_width,
            full_width=m.full_width,
            prunable=m.prunable,
            removable=m.removable,
        )
        for i, (name, m) in enumerate(found)
    ]


def resolve_widths(full_widths: list[int], widths: list[int] | None, prunable: list[bool],
                   removable: list[bool] | None = None) -> list[int]:
    """Check a width configuration against the full widths; ``None`` means full width everywhere.

    Width 0 (block removed) is allowed where ``removable`` says the block has a shortcut.
    """
    if widths is None:
        return list(full_widths)
    widths = [int(w) for w in widths]
    removable = removable or [False] * len(full_widths)
    if len(widths) != len(full_widths):
        raise ValueError(f"width configuration has {len(widths)} entries, the model has {len(full_widths)} blocks")
    for i, (w, full, can, rem) in enumerate(zip(widths, full_widths, prunable, removable)):
        if w == 0 and rem:
            continue
        if not 1 <= w <= full:
            raise ValueError(f"block {i}: inner width {w} outside {'0' if rem else '1'}..{full}")
        if not can and w != full:
            raise ValueError(f"block {i}: inner width is tied to the block input and must stay {full}")
    return widths
