"""Dataset readers: generated ImageFolder and cifar-10-batches-py trees, the safe unpickler, splits."""

from __future__ import annotations

import pathlib
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from hirelc_deploy.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CifarBatchesDataset,
    ImageFolderDataset,
    Normalize,
    open_dataset,
    split_indices,
    stratified_split,
)
from hirelc_deploy.errors import DatasetError
from hirelc_deploy.settings import shared_dir

# Deliberately not in sorted order on disk creation, to check the class index follows sorted names.
COLOURS = {"zebra": (255, 0, 0), "apple": (0, 128, 255), "mango": (10, 20, 30)}
CIFAR_NAMES = [b"cat", b"dog", b"frog"]


def make_imagefolder(root: pathlib.Path, per_class: int = 4) -> pathlib.Path:
    for name, rgb in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            ext = ".PNG" if i == 0 else ".png"  # extension match is case-insensitive
            Image.new("RGB", (5, 4), rgb).save(root / name / f"{i:02d}{ext}")
    (root / "apple" / "notes.txt").write_text("not an image")
    return root


def cifar_pixels(n: int, offset: int) -> np.ndarray:
    # Image i, channel c is filled with a distinct value so the CHW layout can be checked.
    values = (np.arange(n)[:, None] * 7 + np.arange(3)[None, :] * 60 + offset) % 256
    return np.repeat(values, 1024, axis=1).astype(np.uint8)


def make_cifar(root: pathlib.Path, protocol: int = 2) -> pathlib.Path:
    root.mkdir(parents=True)
    batches = {"data_batch_1": (cifar_pixels(6, 0), [0, 1, 2, 0, 1, 2]), "test_batch": (cifar_pixels(3, 5), [2, 1, 0])}
    for name, (data, labels) in batches.items():
        with (root / name).open("wb") as f:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": name.encode()}, f, protocol=protocol)
    with (root / "batches.meta").open("wb") as f:
        pickle.dump({b"label_names": CIFAR_NAMES, b"num_vis": 3072}, f, protocol=protocol)
    for i in range(2, 6):  # the train split needs all five; reuse batch 1's content
        (root / f"data_batch_{i}").write_bytes((root / "data_batch_1").read_bytes())
    return root


# ---------------------------------------------------------------- ImageFolder


def test_imagefolder_classes_labels_and_pixels(tmp_path):
    ds = ImageFolderDataset(make_imagefolder(tmp_path / "imgs"))
    assert ds.classes == ["apple", "mango", "zebra"]
    assert len(ds) == 12
    assert ds.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert [ds.path(i).name for i in range(4)] == ["00.PNG", "01.png", "02.png", "03.png"]
    for index in (0, 5, 11):
        image, label = ds[index]
        assert isinstance(label, int)
        assert image.dtype == torch.float32 and image.shape == (3, 4, 5)
        expected = torch.tensor(COLOURS[ds.classes[label]], dtype=torch.float32) / 255
        assert torch.allclose(image, expected.view(3, 1, 1).expand(3, 4, 5))


def test_imagefolder_converts_to_rgb_and_applies_transform(tmp_path):
    (tmp_path / "gray").mkdir()
    Image.new("L", (2, 2), 51).save(tmp_path / "gray" / "a.png")
    ds = ImageFolderDataset(tmp_path, transform=lambda x: x * 2)
    image, _ = ds[0]
    assert image.shape == (3, 2, 2)
    assert torch.allclose(image, torch.full((3, 2, 2), 0.4))


def test_imagefolder_limit_per_class(tmp_path):
    ds = ImageFolderDataset(make_imagefolder(tmp_path / "imgs"), limit_per_class=2)
    assert [(ds.path(i).name, int(label)) for i, label in enumerate(ds.labels)] == [
        ("00.PNG", 0), ("01.png", 0), ("00.PNG", 1), ("01.png", 1), ("00.PNG", 2), ("01.png", 2)
    ]
    with pytest.raises(ValueError):
        ImageFolderDataset(tmp_path / "imgs", limit_per_class=0)


@pytest.mark.parametrize(
    "setup, fragment",
    [
        (lambda root: None, "does not exist"),
        (lambda root: root.write_text("x"), "not a directory"),
        (lambda root: root.mkdir(), "no class sub-folders"),
        (lambda root: (root / "cls").mkdir(parents=True), "no images"),
    ],
    ids=["missing", "file", "empty", "no-images"],
)
def test_imagefolder_errors_name_the_directory(tmp_path, setup, fragment):
    root = tmp_path / "ds"
    setup(root)
    with pytest.raises(DatasetError, match=fragment) as info:
        ImageFolderDataset(root)
    assert str(root) in str(info.value) and "\n" not in str(info.value)


def test_imagefolder_unreadable_image(tmp_path):
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match="broken.jpg"):
        ImageFolderDataset(tmp_path)[0]


# ---------------------------------------------------------------- CIFAR batches


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar_batches_items(tmp_path, protocol):
    root = make_cifar(tmp_path / "cifar-10-batches-py", protocol)
    test = CifarBatchesDataset(root, "test")
    assert test.classes == ["cat", "dog", "frog"]
    assert len(test) == 3 and [test[i][1] for i in range(3)] == [2, 1, 0]
    image, label = test[1]
    assert isinstance(label, int) and image.dtype == torch.float32 and image.shape == (3, 32, 32)
    for c in range(3):  # image 1 of test_batch: 7 + 60 * c + 5
        assert torch.all(image[c] == (12 + 60 * c) / 255)
    train = CifarBatchesDataset(root, "train")
    assert len(train) == 30
    assert torch.equal(train[0][0], train[6][0])


def test_cifar_batches_py2_module_name(tmp_path):
    # Pickles from numpy 1.x (and the real CIFAR files) name numpy.core, not numpy._core.
    root = make_cifar(tmp_path / "c", protocol=2)
    raw = (root / "test_batch").read_bytes()
    (root / "test_batch").write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    assert len(CifarBatchesDataset(root, "test")) == 3


def test_cifar_limit_per_class_and_transform(tmp_path):
    root = make_cifar(tmp_path / "c")
    ds = CifarBatchesDataset(root, "train", limit_per_class=2, transform=lambda x: x + 1)
    assert len(ds) == 6 and sorted(int(label) for label in ds.labels) == [0, 0, 1, 1, 2, 2]
    assert ds[0][0].min() >= 1


class _Touch:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_cifar_refuses_malicious_pickle_without_running_it(tmp_path):
    root = make_cifar(tmp_path / "c")
    marker = tmp_path / "pwned"
    payload = pickle.dumps({b"data": _Touch(marker), b"labels": [0]})
    (root / "test_batch").write_bytes(payload)
    with pytest.raises(DatasetError, match="refusing to unpickle") as info:
        CifarBatchesDataset(root, "test")
    assert str(root / "test_batch") in str(info.value)
    assert not marker.exists()
    pickle.loads(payload)  # control: the payload is live under a plain unpickler
    assert marker.exists()


def test_cifar_refuses_non_latin1_codec(tmp_path):
    root = make_cifar(tmp_path / "c")
    # Hand-written protocol-0 pickle: _codecs.encode("x", "rot13") as the whole file.
    (root / "test_batch").write_bytes(b"c_codecs\nencode\n(Vx\nVrot13\ntR.")
    with pytest.raises(DatasetError, match="not a readable CIFAR batch"):
        CifarBatchesDataset(root, "test")


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"garbage", "not a readable CIFAR batch"),
        (pickle.dumps([1, 2, 3]), "expected a dict"),
        (pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}), "shape"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}), "labels"),
        (pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [7]}), "outside"),
    ],
    ids=["garbage", "not-dict", "bad-shape", "label-count", "label-range"],
)
def test_cifar_malformed(tmp_path, content, fragment):
    root = make_cifar(tmp_path / "c")
    (root / "test_batch").write_bytes(content)
    with pytest.raises(DatasetError, match=fragment):
        CifarBatchesDataset(root, "test")


def test_cifar_missing_dir_and_files(tmp_path):
    with pytest.raises(DatasetError, match="does not exist") as info:
        CifarBatchesDataset(tmp_path / "nope", "test")
    assert str(tmp_path / "nope") in str(info.value)
    root = make_cifar(tmp_path / "c")
    (root / "data_batch_3").unlink()
    assert len(CifarBatchesDataset(root, "test")) == 3
    with pytest.raises(DatasetError, match="data_batch_3 is missing"):
        CifarBatchesDataset(root, "train")
    (root / "batches.meta").unlink()
    with pytest.raises(DatasetError, match="batches.meta is missing"):
        CifarBatchesDataset(root, "test")
    with pytest.raises(ValueError):
        CifarBatchesDataset(root, "val")


# ---------------------------------------------------------------- open_dataset


def test_open_dataset_detects_formats(tmp_path):
    cifar = open_dataset(make_cifar(tmp_path / "cifar"), "test")
    assert isinstance(cifar, CifarBatchesDataset) and len(cifar) == 3

    make_imagefolder(tmp_path / "split" / "test")
    by_split = open_dataset(tmp_path / "split", "test", limit_per_class=1)
    assert isinstance(by_split, ImageFolderDataset) and len(by_split) == 3
    assert by_split.root == tmp_path / "split" / "test"
    with pytest.raises(DatasetError, match="no train/ folder"):
        open_dataset(tmp_path / "split", "train")

    flat = open_dataset(make_imagefolder(tmp_path / "flat"), "test")
    assert flat.root == tmp_path / "flat" and flat.classes == ["apple", "mango", "zebra"]


def test_open_dataset_errors_name_the_path(tmp_path):
    for path in (tmp_path / "missing", tmp_path):
        with pytest.raises(DatasetError) as info:
            open_dataset(path, "test")
        assert str(path) in str(info.value)
    (tmp_path / "loose.png").write_bytes(b"")
    with pytest.raises(DatasetError, match="class sub-folders"):
        open_dataset(tmp_path, "test")


# ---------------------------------------------------------------- splits and transforms


def test_split_indices_deterministic_disjoint_covering():
    train, heldout = split_indices(100, 0.2, seed=3)
    assert (train, heldout) == split_indices(100, 0.2, seed=3)
    assert split_indices(100, 0.2, seed=4) != (train, heldout)
    assert len(heldout) == 20 and not set(train) & set(heldout)
    assert sorted(train + heldout) == list(range(100))
    assert train == sorted(train) and heldout == sorted(heldout)
    assert all(type(i) is int for i in train + heldout)
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError):
            split_indices(100, bad, seed=0)
    with pytest.raises(ValueError):
        split_indices(1, 0.5, seed=0)


def test_stratified_split_keeps_proportions():
    labels = [0] * 50 + [1] * 30 + [2] * 20
    train, heldout = stratified_split(labels, 0.1, seed=0)
    assert (train, heldout) == stratified_split(np.array(labels), 0.1, seed=0)
    assert sorted(train + heldout) == list(range(100)) and not set(train) & set(heldout)
    held_labels = [labels[i] for i in heldout]
    assert [held_labels.count(c) for c in range(3)] == [5, 3, 2]
    assert heldout == sorted(heldout) and all(type(i) is int for i in heldout)
    with pytest.raises(ValueError):
        stratified_split(labels, 1.0, seed=0)


def test_normalize():
    norm = Normalize(IMAGENET_MEAN, IMAGENET_STD)
    x = torch.tensor(IMAGENET_MEAN).view(3, 1, 1).expand(3, 2, 2) + torch.tensor(IMAGENET_STD).view(3, 1, 1)
    assert torch.allclose(norm(x), torch.ones(3, 2, 2))
    assert norm(x.unsqueeze(0)).shape == (1, 3, 2, 2)
    with pytest.raises(ValueError):
        Normalize((0.5,), (0.0,))


# ---------------------------------------------------------------- real data


@pytest.mark.shared
def test_real_cifar10_test_split():
    root = shared_dir() / "datasets" / "cifar10"
    if not root.is_dir():
        pytest.skip(f"shared CIFAR-10 not found at {root} (set HIRELC_SHARED)")
    ds = open_dataset(root, "test", limit_per_class=2)
    assert len(ds.classes) == 10 and len(ds) == 20
    assert ds.classes[0] == "airplane"
    image, label = ds[0]
    assert image.shape == (3, 32, 32) and label == 0
    assert 0.0 <= image.min() and image.max() <= 1.0
