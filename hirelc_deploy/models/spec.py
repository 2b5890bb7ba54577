"""``ModelSpec``: one architecture (the zoo's or a user's factory), how to build it at a width configuration,
and its units, found by automatic block discovery (``discovery.py``) the same way for every model."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Sequence

import torch
from torch import nn

from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD
from ..errors import InputError
from ..records import ModelRef
from .discovery import BlockInfo, Discovery, discover
from .shrink import apply_widths, check_widths


@dataclass(frozen=True)
class ModelSpec:
    """An architecture: how to build it, what input it expects (C, H, W) and the normalisation its weights
    expect (the public CIFAR checkpoints were trained with ImageNet's statistics)."""

    name: str
    builder: Callable[..., nn.Module]  # builder(num_classes=...) -> the full-width model
    input_shape: tuple[int, int, int]
    num_classes: int
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    ref: ModelRef | None = None  # how to resolve it again (records store it); None for the zoo's defaults
    fixed_classes: bool = False  # a user's factory decides its class count itself

    def __post_init__(self):
        for flag, values in (("--mean", self.mean), ("--std", self.std)):
            if len(values) != self.input_shape[0]:
                raise InputError(f"{flag}: {len(values)} values for {self.input_shape[0]} input channels")
        if min(self.std) <= 0:
            raise InputError("--std: every value must be positive")

    @property
    def key(self) -> str:
        """A file-name-safe identity (latency table file names): the zoo name, or the factory's name and a
        digest of what its latency depends on (reference, arguments, input shape; not the normalisation)."""
        if self.ref is None or (self.ref.model == self.name and self.ref.input_shape is None):
            return self.name
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.name.split("(")[0]).strip("_")
        identity = [self.ref.model, self.ref.args, list(self.input_shape)]
        return f"{slug}-{hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]}"

    def make(self, num_classes: int | None = None) -> nn.Module:
        """The full-width model with fresh random weights, in eval mode."""
        if self.fixed_classes and num_classes not in (None, self.num_classes):
            raise InputError(f"--model {self.name}: its factory decides the class count ({self.num_classes}); "
                             "pass it with --model-arg if the factory takes one")
        model = self.builder() if self.fixed_classes else self.builder(num_classes=num_classes or self.num_classes)
        return model.eval()

    @cached_property
    def discovery(self) -> Discovery:
        """The units of the full-width model and what discovery left alone (computed once)."""
        # The throwaway model's random initialisation must not move the global RNG: a seeded run draws the same
        # numbers whether or not discovery already ran in this process.
        with torch.random.fork_rng(devices=[]):
            model = self.make()
        return discover(model, self.input_shape, f"--model {self.name}")

    def blocks(self) -> list[BlockInfo]:
        """The units of the full-width model, in execution order (a copy: the discovery is shared)."""
        return list(self.discovery.units)

    def build(self, widths: Sequence[int] | None = None, num_classes: int | None = None) -> nn.Module:
        """The model at a width configuration (None = full width) with fresh random weights, in eval mode:
        built full, then shrunk physically (lowest-L1 channels removed, width-0 units replaced by their
        shortcut)."""
        model = self.make(num_classes)
        if widths is None:
            return model
        blocks = self.blocks()
        return apply_widths(model, blocks, check_widths(blocks, widths), (1, *self.input_shape)).eval()

    def shrink(self, model: nn.Module, widths: Sequence[int], **kwargs) -> nn.Module:
        """Shrink a model of this architecture (trained weights) to ``widths`` in place; ``importance`` in
        ``kwargs`` chooses the channels kept."""
        blocks = self.blocks()
        return apply_widths(model, blocks, check_widths(blocks, widths), (1, *self.input_shape), **kwargs)
