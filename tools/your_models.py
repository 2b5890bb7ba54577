"""Two small CIFAR-10 networks in plain torch (no torchvision), for the "bring your own model" benchmark.

    hirelc inspect --model tools/your_models.py:vgg_small --input-shape 3x32x32
    hirelc inspect --model tools/your_models.py:resnext_small --input-shape 3x32x32

- ``vgg_small``: a VGG-style plain conv-BN-ReLU stack, every convolution inside one ``nn.Sequential`` named
  ``features``, max-pools between stages, global average pool and one Linear. Discovery splits the stack into
  pairs of convolutions.
- ``resnext_small``: a ResNeXt-style CIFAR net: a stem convolution, stages of bottleneck blocks (1x1 reduce ->
  3x3 grouped convolution -> 1x1 expand, BN + ReLU, identity or 1x1-projection shortcut, the residual add inside
  the block module), global average pool, Linear.

Both take 3x32x32 inputs (CIFAR) and any number of classes; the widths are arguments (``--model-arg``).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def _init(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
    return model


class VGGSmall(nn.Module):
    """conv-BN-ReLU stages (``convs_per_stage`` convolutions each) with a 2x2 max-pool after every stage but the
    last, then global average pool and a Linear classifier."""

    def __init__(self, num_classes: int = 10, widths: Sequence[int] = (32, 64, 128, 128),
                 convs_per_stage: int = 2):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for i, width in enumerate(widths):
            for _ in range(convs_per_stage):
                layers += _conv_bn_relu(cin, width)
                cin = width
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(cin, num_classes)
        _init(self)

    def forward(self, x):
        x = self.pool(self.features(x))
        return self.classifier(x.flatten(1))


class ResNeXtBlock(nn.Module):
    """Bottleneck with a grouped 3x3: 1x1 reduce -> 3x3 grouped (``cardinality`` groups) -> 1x1 expand; the
    shortcut is the identity, or a 1x1 projection + BN when the shape changes; ReLU after the add."""

    def __init__(self, cin: int, inner: int, cout: int, cardinality: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, inner, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(inner)
        self.conv2 = nn.Conv2d(inner, inner, 3, stride=stride, padding=1, groups=cardinality, bias=False)
        self.bn2 = nn.BatchNorm2d(inner)
        self.conv3 = nn.Conv2d(inner, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


class ResNeXtSmall(nn.Module):
    """Stem 3x3 conv at full resolution, three stages of ResNeXt bottlenecks (the first of each with stride
    ``strides[i]``), global average pool, Linear.

    The default strides (2, 2, 2) run the stages at 16x16, 8x8 and 4x4: a stage of bottlenecks at 32x32 makes a
    training epoch four times slower on a 2-core CPU (memory-bound 1x1 convolutions and BatchNorm)."""

    def __init__(self, num_classes: int = 10, stem: int = 32, widths: Sequence[int] = (64, 128, 256),
                 inner: Sequence[int] = (32, 64, 128), depth: int = 2, cardinality: int = 8,
                 strides: Sequence[int] = (2, 2, 2)):
        super().__init__()
        self.stem = nn.Sequential(*_conv_bn_relu(3, stem))
        stages, cin = [], stem
        for cout, mid, stride in zip(widths, inner, strides):
            blocks = []
            for j in range(depth):
                blocks.append(ResNeXtBlock(cin, mid, cout, cardinality, stride=stride if j == 0 else 1))
                cin = cout
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        _init(self)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(self.pool(x).flatten(1))


def vgg_small(num_classes: int = 10, widths: Sequence[int] = (32, 64, 128, 128), convs_per_stage: int = 2
              ) -> nn.Module:
    """VGG-style plain CIFAR net (8 convolutions by default: 4 pairs for the search)."""
    return VGGSmall(num_classes, tuple(widths), convs_per_stage)


def resnext_small(num_classes: int = 10, stem: int = 32, widths: Sequence[int] = (64, 128, 256),
                  inner: Sequence[int] = (32, 64, 128), depth: int = 2, cardinality: int = 8,
                  strides: Sequence[int] = (2, 2, 2)) -> nn.Module:
    """ResNeXt-style CIFAR net (3 stages x ``depth`` bottlenecks, grouped 3x3 with ``cardinality`` groups)."""
    return ResNeXtSmall(num_classes, stem, tuple(widths), tuple(inner), depth, cardinality, tuple(strides))
