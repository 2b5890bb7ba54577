"""Blocks: the units the search compresses, and their prunable inner channels.

A block keeps its input and output width whatever happens inside it, so blocks can be shrunk independently:
the search changes a block's *inner* width (the channels between its first and last convolution) and its
precision, never the tensors that flow between blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


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

    @property
    def onnx_prefix(self) -> str:
        """Prefix the TorchScript ONNX exporter gives every node inside this block (``/layer1/layer1.0/``)."""
        parts = self.name.split(".")
        scopes = [".".join(parts[: i + 1]) for i in range(len(parts))]
        return "/" + "/".join(scopes) + "/"


class CompressibleBlock(nn.Module):
    """Base class of every block type: records its widths so the model can describe itself.

    Subclasses name their prunable channel groups: ``prune_roots`` are the convolutions whose output
    channels are the inner channels (torch-pruning follows the dependencies from there), and
    ``channel_params`` lists, per group, every (module, parameter, dim) indexed by those channels, which is
    what channel importance is computed over.
    """

    kind = "block"

    def prune_roots(self) -> list[nn.Conv2d]:
        raise NotImplementedError

    def channel_params(self) -> list[list[tuple[nn.Module, str, int]]]:
        raise NotImplementedError

    def __init__(self, in_channels: int, out_channels: int, inner_width: int, full_width: int, prunable: bool = True):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.inner_width = inner_width
        self.full_width = full_width
        self.prunable = prunable


def conv_bn_conv(first: nn.Conv2d, norm: nn.BatchNorm2d, second: nn.Conv2d) -> list[tuple[nn.Module, str, int]]:
    """The parameters indexed by the channels between two convolutions joined by a BatchNorm."""
    return [(first, "weight", 0), (norm, "weight", 0), (norm, "bias", 0), (second, "weight", 1)]


class TwoConvBlock(CompressibleBlock):
    """A block whose inner channels are conv1's outputs, normalised by bn1 and read by conv2."""

    def prune_roots(self) -> list[nn.Conv2d]:
        return [self.conv1]

    def channel_params(self) -> list[list[tuple[nn.Module, str, int]]]:
        return [conv_bn_conv(self.conv1, self.bn1, self.conv2)]


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
        )
        for i, (name, m) in enumerate(found)
    ]


def resolve_widths(full_widths: list[int], widths: list[int] | None, prunable: list[bool]) -> list[int]:
    """Check a width configuration against the full widths; ``None`` means full width everywhere."""
    if widths is None:
        return list(full_widths)
    widths = [int(w) for w in widths]
    if len(widths) != len(full_widths):
        raise ValueError(f"width configuration has {len(widths)} entries, the model has {len(full_widths)} blocks")
    for i, (w, full, can) in enumerate(zip(widths, full_widths, prunable)):
        if not 1 <= w <= full:
            raise ValueError(f"block {i}: inner width {w} outside 1..{full}")
        if not can and w != full:
            raise ValueError(f"block {i}: inner width is tied to the block input and must stay {full}")
    return widths
