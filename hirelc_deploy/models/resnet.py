"""ImageNet ResNet-18 and ResNet-50 with torchvision's layer names and shapes (no torchvision dependency)."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import CompressibleBlock, TwoConvBlock, conv_bn_conv, resolve_widths


def _downsample(in_ch: int, out_ch: int, stride: int) -> nn.Module | None:
    if stride == 1 and in_ch == out_ch:
        return None
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))


def _shortcut_only(identity: torch.Tensor, is_input: bool) -> torch.Tensor:
    """A removed block's output, relu(0 + identity): the ReLU is skipped when identity is the block's input,
    which is already a ReLU output."""
    return identity if is_input else torch.relu(identity)


class BasicBlock(TwoConvBlock):
    kind = "basic"
    expansion = 1

    def __init__(self, in_ch: int, planes: int, stride: int, inner: int):
        super().__init__(in_ch, planes, inner or planes, planes, removable=True)
        self.conv1 = nn.Conv2d(in_ch, self.inner_width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inner_width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(self.inner_width, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _downsample(in_ch, planes, stride)
        if inner == 0:
            self.remove_branch()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        if self.removed:
            return _shortcut_only(identity, self.downsample is None)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(CompressibleBlock):
    """Bottleneck block; its one inner width applies to both conv1 and conv2 outputs (a documented simplification)."""

    kind = "bottleneck"
    expansion = 4
    branch_modules = ("conv1", "bn1", "conv2", "bn2", "conv3", "bn3")

    def __init__(self, in_ch: int, planes: int, stride: int, inner: int):
        out_ch = planes * self.expansion
        super().__init__(in_ch, out_ch, inner or planes, planes, removable=True)
        width = self.inner_width
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_ch, out_ch, stride)
        if inner == 0:
            self.remove_branch()

    def prune_roots(self) -> list[nn.Conv2d]:
        return [] if self.removed else [self.conv1, self.conv2]

    def channel_params(self) -> list[list[tuple[nn.Module, str, int]]]:
        if self.removed:
            return []
        return [conv_bn_conv(self.conv1, self.bn1, self.conv2), conv_bn_conv(self.conv2, self.bn2, self.conv3)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        if self.removed:
            return _shortcut_only(identity, self.downsample is None)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision-compatible ImageNet ResNet built from a block type and per-stage block counts."""

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: list[int], num_classes: int = 1000,
                 widths: list[int] | None = None):
        super().__init__()
        planes = [p for p, n in zip((64, 128, 256, 512), layers) for _ in range(n)]
        widths = resolve_widths(planes, widths, [True] * len(planes), [True] * len(planes))
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        in_ch, k = 64, 0
        for stage, (stage_planes, n) in enumerate(zip((64, 128, 256, 512), layers), start=1):
            blocks = []
            for i in range(n):
                stride = 2 if stage > 1 and i == 0 else 1
                blocks.append(block(in_ch, stage_planes, stride, widths[k]))
                in_ch, k = stage_planes * block.expansion, k + 1
            setattr(self, f"layer{stage}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))
