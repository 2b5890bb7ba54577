"""Tensor transforms for CHW (or NCHW) float images."""

from __future__ import annotations

from collections.abc import Sequence

import torch

# ImageNet's per-channel statistics: every model's default normalisation, and what the public CIFAR-10 ResNet
# checkpoints were trained with (not CIFAR's own).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize:
    """``(x - mean) / std`` per channel, on a CHW or NCHW tensor."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise ValueError(f"Normalize needs equal-length mean/std with std > 0, got mean={mean}, std={std}")
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()})"
