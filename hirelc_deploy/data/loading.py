"""Which split folders a run reads, and whether their images are decoded into memory or streamed from disk.

Decoding once into memory is fastest when the decoded images are small (CIFAR-10's 11,000 images a run uses take
34 MB): every later pass is a tensor slice. Streaming costs a decode per image per pass, but its memory does not
grow with the folder, and it is the only way to draw a fresh random-resized crop from the full image each pass
(the ImageNet training recipe). ``choose_loading`` picks, and says why (the run's log and ``config.json``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..errors import DatasetError, InputError
from ..progress import Reporter, SilentReporter
from .cifar_batches import CifarBatchesDataset
from .imagefolder import ImageFolderDataset, class_folders
from .images import ImageSet, load_images
from .preprocess import Preprocess
from .stream import BadImages, StreamedImages

Images = ImageSet | StreamedImages  # what the pipeline holds: either offers subset() and batches()

log = logging.getLogger(__name__)

LOADINGS = ("auto", "memory", "stream")
MEMORY_LIMIT_BYTES = 1 << 30  # decoded uint8 images above this stream instead (auto)
SPLIT_FOLDERS = {"train": ("train",), "test": ("test", "val"), "val": ("val", "test")}


@dataclass(frozen=True)
class Loading:
    """How one set of images is read, and why."""

    mode: str  # "memory" or "stream"
    reason: str
    workers: int = 0  # DataLoader worker processes of a stream (0: decoded in the main process)


def choose_loading(requested: str, dataset, preprocess: Preprocess, count: int, workers: int | None = None
                   ) -> Loading:
    """``memory`` or ``stream`` for ``count`` images of ``dataset`` under ``preprocess`` (``requested``: auto,
    memory or stream, from ``--data-loading``); a stream gets ``workers`` processes (``--workers``; default one
    per CPU core, at most 8)."""
    if requested not in LOADINGS:
        raise InputError(f"--data-loading {requested}: expected {', '.join(LOADINGS)}")
    if workers is not None and workers < 0:
        raise InputError(f"--workers {workers}: expected 0 (decode in the main process) or more")
    streams = min(8, os.cpu_count() or 1) if workers is None else workers
    if isinstance(dataset, CifarBatchesDataset):
        return Loading("memory", "CIFAR batch files are read into memory whole")
    if requested == "memory" and preprocess.style == "imagenet":
        raise InputError("--data-loading memory: the imagenet recipe crops every pass from the full image; "
                         "use --data-loading stream or auto")
    if requested != "auto":
        return Loading(requested, f"--data-loading {requested}", streams if requested == "stream" else 0)
    if preprocess.style == "imagenet":
        return Loading("stream", "the imagenet recipe crops every pass from the full image", streams)
    decoded = count * 3 * preprocess.size[0] * preprocess.size[1]
    if decoded <= MEMORY_LIMIT_BYTES:
        return Loading("memory", f"{count} images decode to {decoded / 2**20:.0f} MiB (at most "
                                 f"{MEMORY_LIMIT_BYTES >> 20} MiB are held in memory)")
    return Loading("stream", f"{count} images would decode to {decoded / 2**20:.0f} MiB (more than "
                             f"{MEMORY_LIMIT_BYTES >> 20} MiB)", streams)


def split_folder(path: Path, split: str) -> Path | None:
    """The folder holding ``split`` under ``path`` (``test`` falls back to ImageNet's ``val/`` and back), or
    None when ``path`` has no split folders at all."""
    for name in SPLIT_FOLDERS[split]:
        if (path / name).is_dir():
            return path / name
    if any((path / name).is_dir() for names in SPLIT_FOLDERS.values() for name in names):
        # A split layout without the requested split: its other splits must not be mistaken for classes.
        raise DatasetError(f"--data {path}: has no {' or '.join(f'{n}/' for n in SPLIT_FOLDERS[split])} folder")
    return None


def check_same_classes(path: Path, splits: tuple[str, ...]) -> None:
    """Every split folder of an ImageFolder ``path`` must hold the same class folders (labels are positions in
    the sorted list): the first difference is a one-line error."""
    folders = [f for f in (split_folder(path, s) for s in splits) if f is not None]
    if len(folders) < 2:
        return
    first = folders[0]
    reference = class_folders(first)
    for other in folders[1:]:
        classes = class_folders(other)
        if classes == reference:
            continue
        only_first = sorted(set(reference) - set(classes))
        only_other = sorted(set(classes) - set(reference))
        name, where = (only_first[0], first.name) if only_first else (only_other[0], other.name)
        raise DatasetError(f"--data {path}: {first.name}/ and {other.name}/ have different class folders "
                           f"('{name}' is only in {where}/)")


def open_dataset(path: str | Path, split: str, limit_per_class: int | None = None
                 ) -> CifarBatchesDataset | ImageFolderDataset:
    """Open ``split`` of the dataset at ``path``: CIFAR batches, ``path/<split>/<class>/`` (``val/`` standing in
    for a missing ``test/``), or ``path/<class>/``."""
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"--data {path}: {'is not a directory' if path.exists() else 'does not exist'}")
    if (path / "data_batch_1").exists() or (path / "test_batch").exists():
        return CifarBatchesDataset(path, split, limit_per_class=limit_per_class)
    folder = split_folder(path, split)
    if folder is not None:
        if folder.name != split:
            log.info("--data %s: no %s/ folder, using %s/ as the %s split", path, split, folder.name, split)
        return ImageFolderDataset(folder, limit_per_class=limit_per_class)
    if class_folders(path):
        return ImageFolderDataset(path, limit_per_class=limit_per_class)
    raise DatasetError(f"--data {path}: neither CIFAR batches (data_batch_1/test_batch), nor split folders "
                       f"(train/, test/ or val/), nor class sub-folders")


def read_images(dataset, parts: Sequence[Sequence[int]], preprocess: Preprocess, requested: str = "auto",
                workers: int | None = None, bad: BadImages | None = None, what: str = "images",
                reporter: Reporter | None = None, pin_memory: bool = False) -> tuple[Loading, list[Images]]:
    """The images at each of ``parts`` (index lists) of ``dataset``, under one loading for all of them
    (``choose_loading``, logged): decoded now, with a "decoding ``what``" progress phase, or streamed by the
    loading's workers on each pass."""
    reporter = reporter or SilentReporter()
    count = sum(len(p) for p in parts)
    loading = choose_loading(requested, dataset, preprocess, count, workers)
    log.info("%s of %s: %s (%s), %s recipe, %d workers", what, getattr(dataset, "root", "?"), loading.mode,
             loading.reason, preprocess.style, loading.workers)
    bad = bad if bad is not None else BadImages()
    if loading.mode == "memory":
        reporter.phase(f"decoding {what}", count)
        return loading, [load_images(dataset, p, reporter.advance, preprocess, bad) for p in parts]
    return loading, [StreamedImages(dataset, p, preprocess, loading.workers, bad, pin_memory) for p in parts]
