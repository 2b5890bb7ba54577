"""Decoded image sets held in memory, and the batches training, calibration and evaluation draw from.

Small images are decoded once into a uint8 tensor (CIFAR-10's 50,000 train images take 150 MB) so that several
passes (Fisher, BatchNorm recalibration, fine-tuning epochs, INT8 calibration) do not decode JPEGs again; larger
sets stream from disk (``stream.StreamedImages``, chosen by ``loading.choose_loading``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DatasetError
from .preprocess import Preprocess
from .stream import BadImages
from .transforms import Normalize


@dataclass
class ImageSet:
    """uint8 NCHW images with int64 labels and the class names they index."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: Sequence[int]) -> "ImageSet":
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        return ImageSet(self.images[idx], self.labels[idx], self.classes)

    def batches(self, batch_size: int, normalize: Normalize, size: Sequence[int] | None = None,
                shuffle: bool = False, augment: bool = False, seed: int = 0, drop_last: bool = False
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Float batches, normalised and resized to ``size`` (H, W) when given.

        ``augment`` applies the standard CIFAR recipe: 4-pixel padded random crop and horizontal flip.
        """
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(self), generator=generator) if shuffle else torch.arange(len(self))
        stop = len(self) - (len(self) % batch_size if drop_last else 0)
        for start in range(0, stop, batch_size):
            idx = order[start:start + batch_size]
            x = self.images[idx].float().div_(255.0)
            if augment:
                x = _augment(x, generator)
            if size is not None and tuple(x.shape[-2:]) != tuple(size):
                x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)
            yield normalize(x), self.labels[idx]


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    padded = F.pad(x, (4, 4, 4, 4))
    dy = torch.randint(0, 9, (n,), generator=generator)
    dx = torch.randint(0, 9, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    out = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
    out[flip] = out[flip].flip(-1)
    return out


def load_images(dataset, indices: Sequence[int] | None = None, on_image: Callable[[], None] | None = None,
                preprocess: Preprocess | None = None, bad: BadImages | None = None) -> ImageSet:
    """Decode ``dataset`` (or the given indices of it) into an ImageSet, each image through ``preprocess``'s
    evaluation view (default: as stored, which then must all be one size). Bad images raise a one-line error
    naming the file, or are skipped and recorded in ``bad`` when it skips."""
    indices = range(len(dataset)) if indices is None else indices
    bad = bad if bad is not None else BadImages()
    images, labels = [], []
    for i in indices:
        try:
            image = dataset.read(i)
        except DatasetError as exc:
            bad.found(str(exc), str(dataset.path(i)))
            continue
        array = preprocess.eval_image(image) if preprocess else np.asarray(image, dtype=np.uint8)
        if images and array.shape != images[0].shape:
            raise DatasetError(f"--data: {dataset.path(i)} is {array.shape[1]}x{array.shape[0]}, the images "
                               f"before it {images[0].shape[1]}x{images[0].shape[0]}; images of several sizes need "
                               "a --preprocess recipe")
        images.append(array)
        labels.append(int(dataset.labels[i]))
        if on_image:
            on_image()
    if not images:
        raise DatasetError(f"--data: {getattr(dataset, 'root', '')} gave no images")
    stacked = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return ImageSet(stacked, torch.tensor(labels, dtype=torch.long), list(dataset.classes))


def check_classes(dataset, num_classes: int, path: Path | str) -> None:
    """A dataset whose class count differs from the model's output is a user error, not a silent mismatch."""
    if len(dataset.classes) != num_classes:
        raise DatasetError(f"--data {path}: {len(dataset.classes)} classes, the model expects {num_classes}")
