"""Models defined only for the tests, none from the zoo: the architectures users bring (`--model
tests/user_models/nets.py:FACTORY`). Small widths and 3x16x16 inputs keep the tests fast."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _cbr(cin: int, cout: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, groups=groups, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class TinyVGG(nn.Module):
    """A plain conv-BN-ReLU stack in one Sequential (VGG-style), then a linear classifier."""

    def __init__(self, width: int = 8, num_classes: int = 10):
        super().__init__()
        w = width
        self.features = nn.Sequential(*_cbr(3, w), *_cbr(w, w), nn.MaxPool2d(2), *_cbr(w, 2 * w), *_cbr(2 * w, 2 * w),
                                      nn.MaxPool2d(2), *_cbr(2 * w, 4 * w))
        self.classifier = nn.Linear(4 * w, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


class Unit(nn.Module):
    """A basic residual unit with its own names; a projection shortcut where the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.squeeze = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.squeeze_norm = nn.BatchNorm2d(cout)
        self.mix = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.mix_norm = nn.BatchNorm2d(cout)
        self.proj = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                     if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x):
        y = F.relu(self.squeeze_norm(self.squeeze(x)))
        return F.relu(self.mix_norm(self.mix(y)) + self.proj(x))


class ProjectionResNet(nn.Module):
    def __init__(self, width: int = 8, num_classes: int = 10):
        super().__init__()
        self.entry = nn.Sequential(*_cbr(3, width))
        self.stage_a = nn.Sequential(Unit(width, width, 1), Unit(width, width, 1))
        self.stage_b = nn.Sequential(Unit(width, 2 * width, 2), Unit(2 * width, 2 * width, 1))
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        x = self.stage_b(self.stage_a(self.entry(x)))
        return self.head(x.mean((2, 3)))


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.expand(F.relu(self.reduce(s))))


class InvertedSE(nn.Module):
    """Expand (1x1) -> depthwise (3x3) -> squeeze-excitation -> project (1x1), identity shortcut where shapes
    allow."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int = 4):
        super().__init__()
        hidden = cin * expand
        self.residual = stride == 1 and cin == cout
        self.body = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True), SqueezeExcite(hidden, max(4, hidden // 4)),
            nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.body(x)
        return x + out if self.residual else out


class MobileSE(nn.Module):
    def __init__(self, width: int = 8, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(*_cbr(3, width, 2))
        self.blocks = nn.Sequential(InvertedSE(width, width, 1), InvertedSE(width, 2 * width, 2),
                                    InvertedSE(2 * width, 2 * width, 1))
        self.head = nn.Sequential(nn.Conv2d(2 * width, 8 * width, 1, bias=False), nn.BatchNorm2d(8 * width),
                                  nn.ReLU6(inplace=True))
        self.fc = nn.Linear(8 * width, num_classes)

    def forward(self, x):
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class GroupedBottleneck(nn.Module):
    """ResNeXt bottleneck: 1x1 -> grouped 3x3 (cardinality groups) -> 1x1, with a shortcut."""

    def __init__(self, cin: int, cout: int, stride: int, cardinality: int = 4, group_width: int = 4):
        super().__init__()
        inner = cardinality * group_width
        self.conv_reduce = nn.Conv2d(cin, inner, 1, bias=False)
        self.bn_reduce = nn.BatchNorm2d(inner)
        self.conv_grouped = nn.Conv2d(inner, inner, 3, stride, 1, groups=cardinality, bias=False)
        self.bn_grouped = nn.BatchNorm2d(inner)
        self.conv_expand = nn.Conv2d(inner, cout, 1, bias=False)
        self.bn_expand = nn.BatchNorm2d(cout)
        self.shortcut = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                         if stride != 1 or cin != cout else nn.Sequential())

    def forward(self, x):
        y = F.relu(self.bn_reduce(self.conv_reduce(x)))
        y = F.relu(self.bn_grouped(self.conv_grouped(y)))
        return F.relu(self.bn_expand(self.conv_expand(y)) + self.shortcut(x))


class TinyResNeXt(nn.Module):
    def __init__(self, width: int = 16, num_classes: int = 10, cardinality: int = 4):
        super().__init__()
        self.stem = nn.Sequential(*_cbr(3, width))
        self.layer1 = nn.Sequential(GroupedBottleneck(width, width, 1, cardinality),
                                    GroupedBottleneck(width, width, 1, cardinality))
        self.layer2 = nn.Sequential(GroupedBottleneck(width, 2 * width, 2, cardinality, 8),
                                    GroupedBottleneck(2 * width, 2 * width, 1, cardinality, 8))
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class Mixed(nn.Module):
    """Two branches concatenated (inception-style): each branch's inner channels can narrow, the concatenated
    ones cannot."""

    def __init__(self, cin: int, branch: int):
        super().__init__()
        self.left = nn.Sequential(*_cbr(cin, branch), *_cbr(branch, branch))
        self.right = nn.Sequential(nn.Conv2d(cin, branch, 1, bias=False), nn.BatchNorm2d(branch), nn.ReLU(),
                                   *_cbr(branch, branch))

    def forward(self, x):
        return torch.cat([self.left(x), self.right(x)], 1)


class ConcatNet(nn.Module):
    def __init__(self, width: int = 8, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(*_cbr(3, width))
        self.mixed = Mixed(width, width)
        self.post = nn.Sequential(*_cbr(2 * width, 2 * width, 2))
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        x = self.post(self.mixed(self.stem(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class DataDependent(nn.Module):
    """Control flow that depends on the data: no graph can be traced from it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, 1, 1)
        self.gate = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1))
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.conv(x)
        if x.mean() > 0:
            x = self.gate(x)
        return self.fc(x.mean((2, 3)))


def vgg(width: int = 8, num_classes: int = 10) -> nn.Module:
    return TinyVGG(width, num_classes)


def resnet_projection(width: int = 8, num_classes: int = 10) -> nn.Module:
    return ProjectionResNet(width, num_classes)


def mobilenet_se(width: int = 8, num_classes: int = 10) -> nn.Module:
    return MobileSE(width, num_classes)


def resnext(width: int = 16, num_classes: int = 10) -> nn.Module:
    return TinyResNeXt(width, num_classes)


def concat(width: int = 8, num_classes: int = 10) -> nn.Module:
    return ConcatNet(width, num_classes)


def untraceable() -> nn.Module:
    return DataDependent()


def raises() -> nn.Module:
    raise RuntimeError("out of coffee")


def not_a_module():
    return {"conv": nn.Conv2d(3, 8, 3)}


class SharedReluStack(nn.Module):
    """Layers as attributes of the model itself, one ReLU module called after every convolution, and the
    classifier beside them."""

    def __init__(self, width: int = 8, num_classes: int = 10):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, 2 * width, 3, padding=1, bias=False), nn.BatchNorm2d(2 * width)
        self.conv4, self.bn4 = nn.Conv2d(2 * width, 2 * width, 3, padding=1, bias=False), nn.BatchNorm2d(2 * width)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.relu(self.bn3(self.conv3(x)))
        x = self.relu(self.bn4(self.conv4(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


class WrappedBody(nn.Module):
    """RegNet-style residual block: the branch is one Sequential (``f``), the shortcut a projection where the
    shape changes."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.f = nn.Sequential(*_cbr(cin, cout, stride), nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                               nn.BatchNorm2d(cout))
        self.proj = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                     if stride != 1 or cin != cout else None)

    def forward(self, x):
        return F.relu(self.f(x) + (x if self.proj is None else self.proj(x)))


class SEBottleneck(nn.Module):
    """Bottleneck with a convolutional squeeze-excitation gate on the residual branch (SENet placement)."""

    def __init__(self, channels: int, inner: int):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(channels, inner, 1, bias=False), nn.BatchNorm2d(inner)
        self.conv2, self.bn2 = nn.Conv2d(inner, inner, 3, 1, 1, bias=False), nn.BatchNorm2d(inner)
        self.conv3, self.bn3 = nn.Conv2d(inner, channels, 1, bias=False), nn.BatchNorm2d(channels)
        self.se = SqueezeExcite(channels, channels // 4)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        return self.relu(self.se(self.bn3(self.conv3(y))) + x)


def hard_swish(x):
    return x * F.relu6(x + 3) / 6


class HardSwishStack(nn.Module):
    """Two conv pairs with a hand-written hard-swish (a constant added inside the activation)."""

    def __init__(self, width: int = 8, num_classes: int = 10):
        super().__init__()
        self.features = nn.ModuleList([nn.Conv2d(3, width, 3, padding=1), nn.Conv2d(width, width, 3, padding=1),
                                       nn.Conv2d(width, width, 3, padding=1), nn.Conv2d(width, width, 3, padding=1)])
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        for conv in self.features:
            x = hard_swish(conv(x))
        return self.fc(x.mean((2, 3)))


class Mixture(nn.Module):
    def __init__(self, width: int = 8, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(*_cbr(3, width))
        self.wrapped = nn.Sequential(WrappedBody(width, width, 1), WrappedBody(width, 2 * width, 2))
        self.se = nn.Sequential(SEBottleneck(2 * width, width), SEBottleneck(2 * width, width))
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        x = self.se(self.wrapped(self.stem(x)))
        return self.fc(x.mean((2, 3)))


def shared_relu(width: int = 8, num_classes: int = 10) -> nn.Module:
    return SharedReluStack(width, num_classes)


def mixture(width: int = 8, num_classes: int = 10) -> nn.Module:
    return Mixture(width, num_classes)


def hardswish(width: int = 8, num_classes: int = 10) -> nn.Module:
    return HardSwishStack(width, num_classes)
