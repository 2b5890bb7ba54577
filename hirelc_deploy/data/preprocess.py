"""How an image file becomes the model's input: the two standard recipes, written with Pillow and numpy.

- ``cifar`` (chosen for inputs up to 64x64): the image resized to the input size where it differs; training adds
  a 4-pixel zero-padded random crop and a horizontal flip.
- ``imagenet`` (chosen above 64x64): evaluation resizes the shorter side to ``resize`` (default input / 0.875,
  256 for 224) and takes the centre crop; training takes a random-resized crop (area ``scale``, aspect ``ratio``)
  and a horizontal flip. These are the recipes the torchvision reference models were trained and scored with.

Every function returns uint8 HWC arrays: workers hand the main process a quarter of the bytes float32 would take,
and normalisation happens once per batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import InputError

STYLES = ("cifar", "imagenet")
SMALL_INPUT = 64  # inputs up to this many pixels a side get the CIFAR recipe under "auto"
CROP_FRACTION = 0.875


@dataclass(frozen=True)
class Preprocess:
    """A resolved preprocessing recipe for one input size (recorded in ``config.json``)."""

    style: str
    size: tuple[int, int]  # model input (H, W)
    resize: int = 0  # imagenet: shorter side before the centre crop
    scale: tuple[float, float] = (0.08, 1.0)  # imagenet training crop: fraction of the image area
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # imagenet training crop: aspect ratio range
    pad: int = 4  # cifar training crop: zero padding on each side

    def eval_image(self, image: Image.Image) -> np.ndarray:
        """The deterministic evaluation view of ``image`` (RGB), uint8 HWC at the input size."""
        h, w = self.size
        if self.style == "cifar":
            return _array(image if image.size == (w, h) else image.resize((w, h), Image.BILINEAR))
        scale = self.resize / min(image.size)
        resized = image.resize((max(w, round(image.size[0] * scale)), max(h, round(image.size[1] * scale))),
                               Image.BILINEAR)
        left, top = (resized.size[0] - w) // 2, (resized.size[1] - h) // 2
        return _array(resized.crop((left, top, left + w, top + h)))

    def train_image(self, image: Image.Image, rng: np.random.Generator) -> np.ndarray:
        """A random training view of ``image`` (RGB), uint8 HWC at the input size."""
        if self.style == "cifar":
            array = self.eval_image(image)
            h, w = self.size
            padded = np.pad(array, ((self.pad, self.pad), (self.pad, self.pad), (0, 0)))
            dy, dx = rng.integers(0, 2 * self.pad + 1, size=2)
            array = padded[dy:dy + h, dx:dx + w]
        else:
            left, top, width, height = self._random_box(image.size, rng)
            array = _array(image.resize(self.size[::-1], Image.BILINEAR, box=(left, top, left + width, top + height)))
        return np.ascontiguousarray(array[:, ::-1]) if rng.random() < 0.5 else array

    def _random_box(self, size: tuple[int, int], rng: np.random.Generator) -> tuple[int, int, int, int]:
        """A crop of random area and aspect ratio (10 tries, then the centre crop with the ratio clamped)."""
        width, height = size
        area = width * height
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
            if 0 < w <= width and 0 < h <= height:
                return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h
        aspect = width / height
        if aspect < self.ratio[0]:
            w, h = width, round(width / self.ratio[0])
        elif aspect > self.ratio[1]:
            w, h = round(height * self.ratio[1]), height
        else:
            w, h = width, height
        return (width - w) // 2, (height - h) // 2, w, h


def _array(image: Image.Image) -> np.ndarray:
    # Images arrive as RGB (the datasets' ``read`` converts once); converting again would copy every pixel.
    return np.asarray(image, dtype=np.uint8)


def resolve_preprocess(style: str, input_shape, resize: int | None = None) -> Preprocess:
    """The recipe ``--preprocess`` (auto, cifar, imagenet) and ``--resize`` give for a C x H x W input."""
    h, w = int(input_shape[-2]), int(input_shape[-1])
    if style == "auto":
        style = "cifar" if max(h, w) <= SMALL_INPUT else "imagenet"
    if style not in STYLES:
        raise InputError(f"--preprocess {style}: expected auto, {' or '.join(STYLES)}")
    if resize is not None and style != "imagenet":
        raise InputError(f"--resize {resize}: only the imagenet recipe resizes before its centre crop "
                         f"(this run uses {style})")
    if resize is not None and resize < max(h, w):
        raise InputError(f"--resize {resize}: smaller than the {h}x{w} centre crop it must contain")
    if style == "imagenet":
        return Preprocess(style, (h, w), resize or round(max(h, w) / CROP_FRACTION))
    return Preprocess(style, (h, w))
