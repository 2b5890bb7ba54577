"""Evaluation, calibration and training images: ImageFolder trees (decoded into memory or streamed from disk) and
``cifar-10-batches-py`` directories."""

from __future__ import annotations

from .cifar_batches import CifarBatchesDataset, RestrictedUnpickler, load_batch_file
from .imagefolder import IMAGE_EXTENSIONS, ImageFolderDataset, Transform
from .images import ImageSet, check_classes, load_images
from .loading import (LOADINGS, Images, Loading, check_same_classes, choose_loading, open_dataset, read_images,
                      split_folder)
from .preprocess import STYLES, Preprocess, resolve_preprocess
from .splits import split_indices, stratified_split
from .stream import BadImages, StreamedImages
from .transforms import IMAGENET_MEAN, IMAGENET_STD, Normalize

__all__ = [
    "BadImages",
    "CifarBatchesDataset",
    "IMAGE_EXTENSIONS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ImageFolderDataset",
    "ImageSet",
    "Images",
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
    "load_batch_file",
    "load_images",
    "open_dataset",
    "read_images",
    "resolve_preprocess",
    "split_folder",
    "split_indices",
    "stratified_split",
]
