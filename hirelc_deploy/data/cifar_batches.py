"""Reader of the ``cifar-10-batches-py`` format, with an unpickler that can only rebuild numpy arrays."""

from __future__ import annotations

import _codecs
import pickle
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..errors import DatasetError
from .imagefolder import Transform, check_limit

TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
META_FILE = "batches.meta"

try:  # numpy >= 2 (and the 1.26 forward-compat shim)
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - older numpy
    from numpy.core import multiarray as _multiarray
    from numpy.core import numeric as _numeric


def _latin1_encode(text, encoding="utf-8", errors="strict"):
    # Py2-era pickles store byte strings as _codecs.encode(text, "latin1"); no other codec is needed.
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"codec {encoding!r} is not allowed")
    return _codecs.encode(text, encoding, errors)


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    # Protocol-5 pickles written by current numpy rebuild arrays with _frombuffer instead of _reconstruct.
    ("numpy.core.numeric", "_frombuffer"): _numeric._frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _numeric._frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals numpy arrays need, so a batch file cannot run code."""

    def __init__(self, file, path: Path):
        super().__init__(file, encoding="bytes")
        self.path = path

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            msg = f"{self.path}: refusing to unpickle {module}.{name} (only numpy arrays allowed)"
            raise DatasetError(msg) from None


def load_batch_file(path: str | Path) -> dict:
    """Unpickle one batch file safely; every failure is a DatasetError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"CIFAR batch file {path} is missing")
    try:
        with path.open("rb") as f:
            obj = RestrictedUnpickler(f, path).load()
    except DatasetError:
        raise
    except Exception as exc:  # any unpickling failure means a corrupt or foreign file
        raise DatasetError(f"{path}: not a readable CIFAR batch pickle ({type(exc).__name__}: {exc})") from exc
    if not isinstance(obj, dict):
        raise DatasetError(f"{path}: expected a dict, found {type(obj).__name__}")
    return obj


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = load_batch_file(path)
    data, labels = batch.get(b"data"), batch.get(b"labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DatasetError(f"{path}: b'data' must be a uint8 array of shape (N, 3072)")
    if not isinstance(labels, list) or len(labels) != len(data) or not all(isinstance(v, int) for v in labels):
        raise DatasetError(f"{path}: b'labels' must be a list of {len(data)} ints")
    # Rows are 1024 R, then 1024 G, then 1024 B values, each a row-major 32x32 plane.
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


class CifarBatchesDataset(Dataset):
    """CIFAR-10 from a ``cifar-10-batches-py`` directory; items are (CHW float32 in [0, 1], label)."""

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transform: Transform | None = None,
        limit_per_class: int | None = None,
    ):
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        check_limit(limit_per_class)
        self.root = Path(root)
        self.transform = transform
        if not self.root.is_dir():
            what = "is not a directory" if self.root.exists() else "does not exist"
            raise DatasetError(f"CIFAR batches directory {self.root} {what}")
        meta = load_batch_file(self.root / META_FILE)
        names = meta.get(b"label_names")
        if not isinstance(names, list) or not names or not all(isinstance(n, (bytes, str)) for n in names):
            raise DatasetError(f"{self.root / META_FILE}: b'label_names' must be a non-empty list of strings")
        self.classes: list[str] = [n.decode() if isinstance(n, bytes) else n for n in names]

        parts = [_read_batch(self.root / name) for name in (TRAIN_FILES if split == "train" else TEST_FILES)]
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        if labels.size and (labels.min() < 0 or labels.max() >= len(self.classes)):
            raise DatasetError(f"{self.root}: labels outside 0..{len(self.classes) - 1} for the {split} split")
        if limit_per_class is not None:
            keep = np.concatenate([np.flatnonzero(labels == c)[:limit_per_class] for c in range(len(self.classes))])
            keep.sort()  # file order, like the full split
            images, labels = images[keep], labels[keep]
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def read(self, index: int) -> Image.Image:
        """Sample ``index`` as an RGB Pillow image."""
        return Image.fromarray(self.images[index].transpose(1, 2, 0))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        tensor = torch.from_numpy(self.images[index].astype(np.float32) / 255.0)
        if self.transform is not None:
            tensor = self.transform(tensor)
        return tensor, int(self.labels[index])
