"""Evaluation, calibration and training images: ImageFolder trees (decoded into memory or streamed from disk) and
``cifar-10-batches-py`` directories."""

from __future__ import annotations

from .cifar_batches import CifarBatchesDataset, RestrictedUnpickler, load_batch_file
from .imagefolder import IMAGE_EXTENSIONS, ImageFolderDataset, Transform
from .images import ImageSet, check_classes, dataset_labels, load_images
from .loading import LOADINGS, Loading, check_same_classes, choose_loading, open_dataset, open_images, split_folder
from .preprocess import STYLES, Preprocess, resolve_preprocess
from .splits import split_indices, stratified_split
from .stream import BadImages, StreamedImages
from .transforms import CIFAR_MEAN, CIFAR_STD, Normalize

__all__ = [
    "BadImages",
    "CIFAR_MEAN",
    "CIFAR_STD",
    "CifarBatchesDataset",
    "IMAGE_EXTENSIONS",
    "ImageFolderDataset",
    "ImageSet",
    "LOADINGS",
    "Loading",
    "Normalize",
    "Preprocess",
    "RestrictedUnpickler",
    "STYLES",
    "StreamedImages",
    "Transform",
    "check_classes",
    "check_same_classes",
    "choose_loading",
    "dataset_labels",
    "load_batch_file",
    "load_images",
    "open_dataset",
    "open_images",
    "resolve_preprocess",
    "split_folder",
    "split_indices",
    "stratified_split",
]
