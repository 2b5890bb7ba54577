"""Evaluation/calibration datasets: ImageFolder trees and ``cifar-10-batches-py`` directories."""

from __future__ import annotations

from pathlib import Path

from ..errors import DatasetError
from .cifar_batches import CifarBatchesDataset, RestrictedUnpickler, load_batch_file
from .imagefolder import IMAGE_EXTENSIONS, ImageFolderDataset, Transform
from .images import ImageSet, check_classes, dataset_labels, load_images
from .splits import split_indices, stratified_split
from .transforms import CIFAR_MEAN, CIFAR_STD, Normalize

SPLIT_NAMES = ("train", "val", "test")


def open_dataset(
    path: str | Path,
    split: str,
    transform: Transform | None = None,
    limit_per_class: int | None = None,
) -> CifarBatchesDataset | ImageFolderDataset:
    """Open ``split`` of the dataset at ``path``: CIFAR batches, ``path/split/<class>/``, or ``path/<class>/``."""
    path = Path(path)
    if not path.is_dir():
        what = "is not a directory" if path.exists() else "does not exist"
        raise DatasetError(f"dataset path {path} {what}")
    if (path / "data_batch_1").exists() or (path / "test_batch").exists():
        return CifarBatchesDataset(path, split, transform=transform, limit_per_class=limit_per_class)
    if (path / split).is_dir():
        return ImageFolderDataset(path / split, transform=transform, limit_per_class=limit_per_class)
    if any((path / name).is_dir() for name in SPLIT_NAMES):
        # A split layout without the requested split: its other splits must not be mistaken for classes.
        raise DatasetError(f"dataset path {path} has no {split}/ folder")
    if any(p.is_dir() and not p.name.startswith(".") for p in path.iterdir()):
        return ImageFolderDataset(path, transform=transform, limit_per_class=limit_per_class)
    raise DatasetError(
        f"dataset path {path} is neither CIFAR batches (data_batch_1/test_batch), "
        f"nor has a {split}/ folder, nor class sub-folders"
    )


__all__ = [
    "CIFAR_MEAN",
    "CIFAR_STD",
    "CifarBatchesDataset",
    "IMAGE_EXTENSIONS",
    "ImageFolderDataset",
    "ImageSet",
    "Normalize",
    "RestrictedUnpickler",
    "check_classes",
    "dataset_labels",
    "load_images",
    "load_batch_file",
    "open_dataset",
    "split_indices",
    "stratified_split",
]
