"""ImageFolder datasets (``root/<class>/<image>``) read with Pillow, without torchvision.

Listing never opens an image, and the listing is kept in two numpy arrays (paths as bytes, labels) rather than a
list of Path objects: a 1.3M-image folder lists in seconds, costs tens of MB, and DataLoader worker processes
forked from the main one share it instead of copying it page by page as reference counts are touched.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..errors import DatasetError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})

Transform = Callable[[torch.Tensor], torch.Tensor]


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB float32 CHW tensor in [0, 1] from a Pillow image of any mode."""
    array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous().float().div_(255.0)


def check_limit(limit_per_class: int | None) -> None:
    """Reject a ``limit_per_class`` that is not None or a positive int."""
    if limit_per_class is not None and (not isinstance(limit_per_class, int) or limit_per_class < 1):
        raise ValueError(f"limit_per_class must be a positive int or None, got {limit_per_class!r}")


def _image_files(folder: str) -> list[str]:
    """Image files under ``folder`` (recursively), relative to it, sorted."""
    found = []
    for current, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = os.path.relpath(current, folder)
        # Hidden files are never images: macOS leaves "._name.jpg" metadata files beside copied JPEGs.
        found.extend(name if rel == "." else os.path.join(rel, name) for name in files
                     if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS)
    return sorted(found)


def class_folders(root: Path) -> list[str]:
    """The class folder names of an ImageFolder split, sorted (hidden folders such as .git are never classes)."""
    return sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))


class ImageFolderDataset(Dataset):
    """Images under ``root/<class>/``; label = index of the class folder in sorted order.

    A class folder without images is an error (a typo or a failed copy would otherwise shift every label after it).
    """

    def __init__(self, root: str | Path, transform: Transform | None = None, limit_per_class: int | None = None):
        check_limit(limit_per_class)
        self.root = Path(root)
        self.transform = transform
        if not self.root.exists():
            raise DatasetError(f"--data: {self.root} does not exist")
        if not self.root.is_dir():
            raise DatasetError(f"--data: {self.root} is not a directory")
        self.classes: list[str] = class_folders(self.root)
        if not self.classes:
            raise DatasetError(f"--data: {self.root} has no class sub-folders")
        paths: list[bytes] = []
        labels: list[np.ndarray] = []
        for label, name in enumerate(self.classes):
            files = _image_files(str(self.root / name))[:limit_per_class]
            if not files:
                raise DatasetError(f"--data: class folder {self.root / name} has no images "
                                   f"({', '.join(sorted(IMAGE_EXTENSIONS))})")
            paths.extend(os.fsencode(os.path.join(name, f)) for f in files)
            labels.append(np.full(len(files), label, dtype=np.int64))
        self.paths = np.array(paths, dtype=bytes)
        self.labels = np.concatenate(labels)

    def __len__(self) -> int:
        return len(self.labels)

    def path(self, index: int) -> Path:
        """The file of sample ``index``."""
        return self.root / os.fsdecode(self.paths[index])

    def read(self, index: int) -> Image.Image:
        """Sample ``index`` decoded as an RGB Pillow image; a file Pillow cannot decode is a DatasetError
        naming it."""
        path = self.path(index)
        try:
            with Image.open(path) as image:
                return image.convert("RGB")
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:  # corrupt, truncated, huge
            raise DatasetError(f"--data: cannot read image {path} ({exc})") from exc

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        tensor = pil_to_tensor(self.read(index))
        if self.transform is not None:
            tensor = self.transform(tensor)
        return tensor, int(self.labels[index])
