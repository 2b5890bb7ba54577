"""The model zoo: every built-in architecture, looked up by name."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

from torch import nn

from ..errors import InputError
from .blocks import BlockInfo, describe_blocks
from .cifar_resnet import CifarResNet
from .mobilenet_v2 import MobileNetV2
from .resnet import BasicBlock, Bottleneck, ResNet


@dataclass(frozen=True)
class ModelSpec:
    """A built-in architecture: how to build it and what input it expects (C, H, W)."""

    name: str
    builder: Callable[..., nn.Module]
    input_shape: tuple[int, int, int]
    num_classes: int
    # Input normalisation the weights expect; the public CIFAR checkpoints were trained with ImageNet's stats.
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def build(self, widths: list[int] | None = None, num_classes: int | None = None) -> nn.Module:
        """Build the model at a width configuration (None = full width) with fresh random weights, in eval mode."""
        model = self.builder(num_classes=num_classes or self.num_classes, widths=widths)
        return model.eval()

    def blocks(self) -> list[BlockInfo]:
        """The blocks of the full-width model."""
        return describe_blocks(self.build())


MODELS: dict[str, ModelSpec] = {
    **{
        f"resnet{d}": ModelSpec(f"resnet{d}", partial(CifarResNet, d), (3, 32, 32), 10)
        for d in (20, 32, 44, 56)
    },
    "resnet18": ModelSpec("resnet18", partial(ResNet, BasicBlock, [2, 2, 2, 2]), (3, 224, 224), 1000),
    "resnet50": ModelSpec("resnet50", partial(ResNet, Bottleneck, [3, 4, 6, 3]), (3, 224, 224), 1000),
    "mobilenet_v2": ModelSpec("mobilenet_v2", MobileNetV2, (3, 224, 224), 1000),
}


def get_model_spec(name: str) -> ModelSpec:
    """Look a built-in architecture up by name, with a clear error naming the flag for unknown names."""
    try:
        return MODELS[name]
    except KeyError:
        raise InputError(f"--model: unknown model '{name}' (choose from {', '.join(MODELS)})") from None
