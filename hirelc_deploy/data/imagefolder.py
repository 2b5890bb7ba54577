"""ImageFolder datasets (``root/<class>/<image>``) read with Pillow, without torchvision."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
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


class ImageFolderDataset(Dataset):
    """Images under ``root/<class>/``; label = index of the class folder in sorted order."""

    def __init__(self, root: str | Path, transform: Transform | None = None, limit_per_class: int | None = None):
        check_limit(limit_per_class)
        self.root = Path(root)
        self.transform = transform
        if not self.root.exists():
            raise DatasetError(f"dataset directory {self.root} does not exist")
        if not self.root.is_dir():
            raise DatasetError(f"dataset path {self.root} is not a directory")
        # Hidden folders (.ipynb_checkpoints, .git) are never classes.
        class_dirs = sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not class_dirs:
            raise DatasetError(f"dataset directory {self.root} has no class sub-folders")
        self.classes: list[str] = [p.name for p in class_dirs]
        self.samples: list[tuple[Path, int]] = []
        for label, class_dir in enumerate(class_dirs):
            files = sorted(p for p in class_dir.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
            self.samples.extend((path, label) for path in files[:limit_per_class])
        if not self.samples:
            raise DatasetError(f"dataset directory {self.root} has no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        try:
            with Image.open(path) as image:
                tensor = pil_to_tensor(image)
        except (UnidentifiedImageError, OSError) as exc:
            raise DatasetError(f"cannot read image {path}: {exc}") from exc
        if self.transform is not None:
            tensor = self.transform(tensor)
        return tensor, label
