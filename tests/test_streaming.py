"""Images at any scale: the two preprocessing recipes, streamed vs decoded sets, bad images, split folders and the
choice between memory and streaming."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hirelc_deploy.data import (BadImages, ImageFolderDataset, Normalize, StreamedImages, check_same_classes,
                                choose_loading, load_images, open_dataset, resolve_preprocess)
from hirelc_deploy.data import loading as loading_module
from hirelc_deploy.errors import DatasetError, InputError
from hirelc_deploy.models import get_model_spec
from hirelc_deploy.pipeline import DataConfig, prepare_data
from hirelc_deploy.records import DataOptions
from tests.conftest import make_image_folder

NORM = Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def _gradient(width: int, height: int) -> Image.Image:
    """Red channel = x coordinate scaled to 0..255, green = y: where a crop came from can be read off it."""
    x = np.linspace(0, 255, width)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([x, y, np.zeros_like(x)], -1).round().astype(np.uint8))


# ---------------------------------------------------------------- recipes


def test_auto_recipe_follows_the_input_size():
    assert resolve_preprocess("auto", (3, 32, 32)).style == "cifar"
    big = resolve_preprocess("auto", (3, 224, 224))
    assert (big.style, big.size, big.resize) == ("imagenet", (224, 224), 256)
    assert resolve_preprocess("imagenet", (3, 32, 32), resize=40).resize == 40
    for style, resize, flag in (("jpeg", None, "--preprocess jpeg"), ("cifar", 40, "--resize 40"),
                                ("imagenet", 100, "--resize 100")):
        with pytest.raises(InputError, match=flag):
            resolve_preprocess(style, (3, 224, 224) if resize == 100 else (3, 32, 32), resize)


def test_imagenet_evaluation_is_the_centre_crop_of_the_resized_image():
    recipe = resolve_preprocess("imagenet", (3, 64, 64), resize=80)
    out = recipe.eval_image(_gradient(200, 100))  # shorter side 100 -> 80: 160x80, then the centre 64x64
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    # The crop spans x in [48, 112) of 160: red runs from about 0.3 to 0.7 of full scale, centred.
    assert abs(int(out[32, 0, 0]) - 0.3 * 255) < 8 and abs(int(out[32, -1, 0]) - 0.7 * 255) < 8
    assert abs(int(out[0, 32, 1]) - 0.1 * 255) < 8 and abs(int(out[-1, 32, 1]) - 0.9 * 255) < 8


def test_training_views_are_seeded_random_crops_and_flips():
    image = _gradient(120, 90)
    recipe = resolve_preprocess("imagenet", (3, 32, 32), resize=40)
    views = [recipe.train_image(image, np.random.default_rng(seed)) for seed in range(12)]
    assert all(v.shape == (32, 32, 3) for v in views)
    assert np.array_equal(views[0], recipe.train_image(image, np.random.default_rng(0)))
    assert len({v.tobytes() for v in views}) == 12  # different areas
    left_to_right = [int(v[16, -1, 0]) > int(v[16, 0, 0]) for v in views]
    assert any(left_to_right) and not all(left_to_right)  # some flipped

    cifar = resolve_preprocess("cifar", (3, 32, 32))
    flat = Image.new("RGB", (32, 32), (255, 255, 255))
    padded = [cifar.train_image(flat, np.random.default_rng(seed)) for seed in range(12)]
    assert any((v == 0).all(axis=2).any() for v in padded)  # zero padding shifted in
    assert all(v.shape == (32, 32, 3) for v in padded)


# ---------------------------------------------------------------- streamed == decoded


def test_streamed_batches_match_decoded_ones(tmp_path):
    root = make_image_folder(tmp_path / "imgs", per_class=6, classes=3, size=16)
    dataset = ImageFolderDataset(root)
    recipe = resolve_preprocess("cifar", (3, 16, 16))
    indices = [0, 17, 4, 9, 12, 3, 8]
    decoded = load_images(dataset, indices, preprocess=recipe)
    streamed = StreamedImages(dataset, indices, recipe, workers=0)
    assert len(streamed) == len(decoded) and torch.equal(streamed.labels, decoded.labels)
    for (a, ya), (b, yb) in zip(decoded.batches(3, NORM), streamed.batches(3, NORM)):
        assert torch.equal(a, b) and torch.equal(ya, yb)
    sub = streamed.subset([1, 2])
    assert sub.indices.tolist() == [17, 4]


def test_training_views_do_not_depend_on_the_worker_count(tmp_path):
    dataset = ImageFolderDataset(make_image_folder(tmp_path / "imgs", per_class=4, classes=2, size=40))
    recipe = resolve_preprocess("imagenet", (3, 24, 24))
    runs = [list(StreamedImages(dataset, range(8), recipe, workers=w).batches(3, NORM, shuffle=True, augment=True,
                                                                             seed=5)) for w in (0, 2)]
    assert [y.tolist() for _, y in runs[0]] == [y.tolist() for _, y in runs[1]]
    assert all(torch.equal(a, b) for (a, _), (b, _) in zip(*runs))
    assert all(x.shape[1:] == (3, 24, 24) for x, _ in runs[0])


# ---------------------------------------------------------------- bad images


def _with_corrupt_jpeg(root: Path) -> Path:
    make_image_folder(root, per_class=3, classes=2, size=8)
    bad = root / "class01" / "0001.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # a PNG signature, then garbage
    return bad


@pytest.mark.parametrize("workers", [0, 2])
def test_a_corrupt_image_is_named_or_skipped_and_counted(tmp_path, workers):
    bad = _with_corrupt_jpeg(tmp_path / "imgs")
    dataset = ImageFolderDataset(tmp_path / "imgs")
    recipe = resolve_preprocess("cifar", (3, 8, 8))
    with pytest.raises(DatasetError) as info:
        list(StreamedImages(dataset, range(6), recipe, workers).batches(4, NORM))
    message = str(info.value)
    assert str(bad) in message and "--skip-bad-images" in message and "\n" not in message
    skipped = BadImages(skip=True)
    batches = list(StreamedImages(dataset, range(6), recipe, workers, skipped).batches(4, NORM))
    assert sum(len(y) for _, y in batches) == 5 and skipped.files == {str(bad)}
    in_memory = BadImages(skip=True)
    assert len(load_images(dataset, range(6), preprocess=recipe, bad=in_memory)) == 5
    assert in_memory.files == {str(bad)}
    with pytest.raises(DatasetError, match="0001.png"):
        load_images(dataset, range(6), preprocess=recipe)


# ---------------------------------------------------------------- split folders


def test_val_stands_in_for_a_missing_test_split(tmp_path):
    make_image_folder(tmp_path / "train", per_class=2, classes=2, size=8)
    make_image_folder(tmp_path / "val", per_class=1, classes=2, size=8)
    assert open_dataset(tmp_path, "test").root == tmp_path / "val"
    check_same_classes(tmp_path, ("train", "test"))
    (tmp_path / "val" / "class02").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "val" / "class02" / "a.png")
    with pytest.raises(DatasetError, match=r"train/ and val/ have different class folders \('class02' is only in "
                                           r"val/\)"):
        check_same_classes(tmp_path, ("train", "test"))


# ---------------------------------------------------------------- memory or stream


def test_loading_is_chosen_by_recipe_and_decoded_size(tmp_path, monkeypatch):
    dataset = ImageFolderDataset(make_image_folder(tmp_path / "imgs", per_class=2, classes=2, size=8))
    small, big = resolve_preprocess("auto", (3, 32, 32)), resolve_preprocess("auto", (3, 224, 224))
    assert choose_loading("auto", dataset, small, 11_000).mode == "memory"
    assert choose_loading("auto", dataset, big, 10).mode == "stream"
    assert choose_loading("stream", dataset, small, 10).mode == "stream"
    monkeypatch.setattr(loading_module, "MEMORY_LIMIT_BYTES", 3 * 32 * 32 * 100)
    assert choose_loading("auto", dataset, small, 101).mode == "stream"
    with pytest.raises(InputError, match="--data-loading memory"):
        choose_loading("memory", dataset, big, 10)
    with pytest.raises(InputError, match="--data-loading disk"):
        choose_loading("disk", dataset, small, 10)


def test_prepare_data_streams_a_held_out_split_chosen_without_decoding(tiny_cifar):
    spec = get_model_spec("resnet20")
    config = DataConfig(train_images=50, heldout_images=20, options=DataOptions(loading="stream", workers=0))
    streamed = prepare_data(spec, tiny_cifar, config)
    decoded = prepare_data(spec, tiny_cifar, DataConfig(train_images=50, heldout_images=20))
    assert (streamed.plan.loading, decoded.plan.loading) == ("stream", "memory")
    assert isinstance(streamed.heldout, StreamedImages)
    assert torch.equal(streamed.heldout.labels, decoded.heldout.labels)
    a = torch.cat([x for x, _ in streamed.heldout_batches(8)])
    b = torch.cat([x for x, _ in decoded.heldout_batches(8)])
    assert torch.equal(a, b)


def test_streaming_decodes_only_what_a_pass_asks_for(tiny_cifar, monkeypatch):
    reads = []
    original = ImageFolderDataset.read
    monkeypatch.setattr(ImageFolderDataset, "read", lambda self, i: reads.append(i) or original(self, i))
    spec = get_model_spec("resnet20")
    config = DataConfig(train_images=200, heldout_images=40, options=DataOptions(loading="stream", workers=0))
    data = prepare_data(spec, tiny_cifar, config)
    assert reads == []  # listing and the held-out split need no image
    next(data.train_batches(batch_size=16))
    assert len(reads) == 16


# ---------------------------------------------------------------- bounded memory

PEAK = r"""
import json, resource, runpy, sys
sys.argv = ["hirelc", *sys.argv[1:]]
try:
    runpy.run_module("hirelc_deploy.cli", run_name="__main__")
except SystemExit as exc:
    assert not exc.code, exc.code
print("PEAK", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _folder_of_jpegs(root: Path, per_class: int) -> Path:
    rng = np.random.default_rng(0)
    for c in range(10):
        (root / "train" / f"c{c}").mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(root / "train" / f"c{c}" /
                                                                                   f"{i}.jpg")
    return root


def test_peak_memory_of_a_streamed_run_does_not_grow_with_the_folder(tmp_path):
    """The smaller version of tools/bench_data_scale.py: Fisher sensitivity over a streamed folder of 3,000
    64x64 JPEGs peaks within 10% of the same over 300 (decoding the folder would add 35 MiB as uint8, 140 MiB
    as float)."""
    weights = tmp_path / "w.pt"
    torch.save(get_model_spec("resnet20").build().state_dict(), weights)
    peaks = []
    for per_class in (30, 300):
        data = _folder_of_jpegs(tmp_path / f"d{per_class}", per_class)
        done = subprocess.run([sys.executable, "-c", PEAK, "-q", "sensitivity", "--model", "resnet20", "--weights",
                               str(weights), "--data", str(data), "--samples", "32", "--data-loading", "stream",
                               "--workers", "1"], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        peaks.append(int(done.stdout.split("PEAK")[-1]))
    assert peaks[1] <= 1.10 * peaks[0], peaks
