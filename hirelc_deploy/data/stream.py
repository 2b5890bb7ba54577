"""Images read from disk batch by batch through ``torch.utils.data.DataLoader`` worker processes: memory bounded
by the batches in flight, whatever the size of the folder.

``StreamedImages`` offers what ``ImageSet`` (the decoded-in-memory set) offers, ``subset`` and ``batches``, so the
pipeline does not know which one it holds. Each image's random training view is drawn from a generator seeded by
(pass seed, position in the pass): the batches of a pass are the same with 0, 2 or 16 workers.

A file Pillow cannot decode never raises inside a worker (where the traceback would be wrapped in a multi-line
DataLoader error): the worker returns it as bad, and the main process raises a one-line error naming it, or
skips and counts it under ``--skip-bad-images``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import DatasetError
from .preprocess import Preprocess, resolve_preprocess
from .transforms import Normalize

BAD_IMAGE_HINT = "pass --skip-bad-images to skip and count such files"


@dataclass
class BadImages:
    """Images that could not be decoded: an error at the first one, or (``skip``) skipped and remembered."""

    skip: bool = False
    files: set[str] = field(default_factory=set)

    def found(self, error: str, path: str) -> None:
        """Record a bad image, or raise its one-line error when bad images are not skipped."""
        if not self.skip:
            raise DatasetError(f"{error}; {BAD_IMAGE_HINT}")
        self.files.add(path)


class _Views(Dataset):
    """The images at ``indices`` of ``dataset`` as uint8 CHW tensors at the input size (evaluation or random
    training views); a bad image comes back as (None, label, error, path)."""

    def __init__(self, dataset, indices: np.ndarray, preprocess: Preprocess, augment: bool, seed: int):
        self.dataset, self.indices, self.preprocess = dataset, indices, preprocess
        self.augment, self.seed = augment, seed

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int):
        index = int(self.indices[position])
        label = int(self.dataset.labels[index])
        try:
            image = self.dataset.read(index)
        except DatasetError as exc:
            return None, label, str(exc), str(self.dataset.path(index))
        if self.augment:
            array = self.preprocess.train_image(image, np.random.default_rng((self.seed, position)))
        else:
            array = self.preprocess.eval_image(image)
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1))), label, None, None


def _collate(items):
    good = [(x, y) for x, y, _, _ in items if x is not None]
    bad = [(error, path) for x, _, error, path in items if x is None]
    images = torch.stack([x for x, _ in good]) if good else None
    return images, torch.tensor([y for _, y in good], dtype=torch.long), bad


class StreamedImages:
    """The images at ``indices`` of an ImageFolder ``dataset``, decoded on demand by ``workers`` processes."""

    def __init__(self, dataset, indices: Sequence[int], preprocess: Preprocess, workers: int = 0,
                 bad: BadImages | None = None, pin_memory: bool = False):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        self.preprocess, self.workers, self.pin_memory = preprocess, workers, pin_memory
        self.bad = bad if bad is not None else BadImages()
        self.classes: list[str] = list(dataset.classes)

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def labels(self) -> torch.Tensor:
        """Labels of the images, in order, without decoding any."""
        return torch.from_numpy(np.asarray(self.dataset.labels)[self.indices])

    def subset(self, indices: Sequence[int]) -> "StreamedImages":
        """The images at ``indices`` of this set."""
        return StreamedImages(self.dataset, self.indices[np.asarray(list(indices), dtype=np.int64)],
                              self.preprocess, self.workers, self.bad, self.pin_memory)

    def batches(self, batch_size: int, normalize: Normalize, size: Sequence[int] | None = None,
                shuffle: bool = False, augment: bool = False, seed: int = 0, drop_last: bool = False
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Float batches, normalised, at ``size`` (H, W; default the recipe's); ``augment`` draws training views.

        Bad images are left out of their batch (when skipped), so a batch may hold fewer than ``batch_size``.
        """
        preprocess = self.preprocess
        if size is not None and tuple(size) != preprocess.size:
            preprocess = resolve_preprocess(preprocess.style, (3, *size))
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(self), generator=generator).numpy() if shuffle else np.arange(len(self))
        stop = len(self) - (len(self) % batch_size if drop_last else 0)
        views = _Views(self.dataset, self.indices[order[:stop]], preprocess, augment, seed)
        loader = DataLoader(views, batch_size=batch_size, num_workers=self.workers, collate_fn=_collate,
                            pin_memory=self.pin_memory)
        try:
            for images, labels, bad in loader:
                for error, path in bad:
                    self.bad.found(error, path)
                if images is not None:
                    yield normalize(images.float().div_(255.0)), labels
        except RuntimeError as exc:
            if "DataLoader worker" not in str(exc):
                raise
            first = str(exc).strip().splitlines()[0]
            raise DatasetError(f"--data: a data loader worker process died ({first}); the machine may be out of "
                               "memory: try fewer --workers") from None

