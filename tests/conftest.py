"""Shared fixtures: tiny targets, the shared-data location, and seeding."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hirelc_deploy.latency.table import BlockLatency, LatencyTable
from hirelc_deploy.settings import shared_dir
from hirelc_deploy.targets import parse_target

# Tests check behaviour, not speed: short timing, and no long waits for a quiet machine.
TINY_TARGET = """
schema_version = 1
name = "tiny-cpu"
description = "fast test target"
backend = "onnxruntime"
execution_provider = "CPUExecutionProvider"
precisions = ["fp32", "int8"]
threads = 1
batch_size = 1
channel_multiple = 4
width_fractions = [0.5, 1.0]

[measure]
warmup_runs = 3
bursts = 3
runs_per_burst = 5
profile_runs = 5
max_retries = 0
max_wait_s = 2.0
# Three fresh processes for compress's verdict instead of the backend's five: tests check the rule, not the noise.
final_processes = 3
# Three bursts of five runs are rough by design (their spread reaches tens of percent): no refusal for noise.
max_table_uncertainty = 10.0
"""

# TINY_TARGET with block removal in its grid: three widths per block, so the table profiles in seconds.
QUICK_TARGET = TINY_TARGET.replace('name = "tiny-cpu"', 'name = "quick-cpu"').replace(
    "width_fractions = [0.5, 1.0]", "width_fractions = [0.0, 0.5, 1.0]")
# A short compress run: 6 evaluations, small data slices, 2 finalists.
QUICK_RUN = ["--latency-budget", "0.6x", "--evals", "6", "--finetune-images", "256", "--finetune-epochs", "0.5",
             "--heldout-images", "100", "--test-per-class", "5", "--finalists", "2"]


@pytest.fixture(scope="session", autouse=True)
def _hirelc_home(tmp_path_factory):
    """No test writes into the real ``~/.hirelc``: the session gets its own ``$HIRELC_HOME`` (subprocesses inherit
    it), and the per-directory overrides are cleared so the home decides."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HIRELC_HOME", str(tmp_path_factory.mktemp("hirelc_home")))
        patch.delenv("HIRELC_PROFILES", raising=False)
        patch.delenv("HIRELC_TABLES", raising=False)
        yield


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture
def tiny_target(tmp_path: Path):
    path = tmp_path / "tiny-cpu.toml"
    path.write_text(TINY_TARGET)
    return parse_target(path)


@pytest.fixture
def shared() -> Path:
    root = shared_dir()
    if not (root / "models" / "cifar10-resnet").is_dir():
        pytest.skip(f"shared data not found at {root} (set HIRELC_SHARED)")
    return root


def pytest_configure(config):
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def noise_tolerant(name: str, directory: Path) -> Path:
    """A copy of the shipped target ``name`` (same name and settings) that never refuses a table for noise: tests
    check behaviour on shared machines whose noise they do not control (the refusal itself is tested in
    test_profile_integration.py)."""
    from hirelc_deploy.targets.catalog import SHIPPED_DIR

    path = Path(directory) / f"{name}.toml"
    text = (SHIPPED_DIR / f"{name}.toml").read_text(encoding="utf-8")
    path.write_text(text.replace("[measure]\n", "[measure]\nmax_table_uncertainty = 1.0\n"), encoding="utf-8")
    return path


def make_image_folder(root: Path, per_class: int, classes: int = 10, size: int = 32, seed: int = 0) -> Path:
    """ImageFolder of random PNGs whose mean colour leans towards their class (learnable but not trivial)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c in range(classes):
        folder = root / f"class{c:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            base = rng.integers(0, 256, size=(size, size, 3))
            base[..., c % 3] = (base[..., c % 3] + 40 * (c // 3 + 1)) % 256
            Image.fromarray(base.astype(np.uint8)).save(folder / f"{i:04d}.png")
    return root


@pytest.fixture
def tiny_cifar(tmp_path: Path) -> Path:
    """A 10-class ImageFolder dataset with train/ (24 per class) and test/ (4 per class) splits."""
    root = tmp_path / "data"
    make_image_folder(root / "train", 24, seed=1)
    make_image_folder(root / "test", 4, seed=2)
    return root


def inner_widths(model: torch.nn.Module, blocks) -> list[int]:
    """Each block's inner width as the model's modules have it: the output channels of its first channel
    group's root convolution, 0 where the block was removed (replaced by an fx graph of its shortcut alone),
    the full width where the block has no channel group of its own."""
    widths = []
    for block in blocks:
        if block.removable and isinstance(model.get_submodule(block.name), torch.fx.GraphModule):
            widths.append(0)
        elif block.groups:
            widths.append(model.get_submodule(block.groups[0].root).out_channels)
        else:
            widths.append(block.full_width)
    return widths


def toy_table(fingerprint=None):
    """A two-block table with round numbers, measured (per its fingerprint) on this machine as cpu-ort-1t."""
    from hirelc_deploy.targets import current_fingerprint, load_target

    blocks = [
        BlockLatency("b0", 8, [4, 8], {"fp32": [1.0, 2.0], "int8": [0.5, 1.0]}, {"fp32": [0.1, 0.1], "int8": [0, 0]}),
        BlockLatency("b1", 8, [4, 8], {"fp32": [3.0, 4.0], "int8": [1.5, 2.0]}, {"fp32": [0.1, 0.1], "int8": [0, 0]}),
    ]
    transitions = [{"fp32->int8": 0.1}, {"fp32->int8": 0.2, "int8->fp32": 0.3}, {"int8->fp32": 0.4}]
    fp = fingerprint or current_fingerprint(load_target("cpu-ort-1t")).to_dict()
    return LatencyTable("toy", "cpu-ort-1t", "measured", fp, [1, 3, 8, 8], 10.0, blocks, transitions)


def random_table(seed: int, blocks: int, removable: bool = True) -> LatencyTable:
    """A table with arbitrary (not monotone) latencies and boundary costs, as noisy measurements can give."""
    rng = np.random.default_rng(seed)
    rows = []
    for b in range(blocks):
        full = int(rng.choice([8, 16]))
        widths = ([0] if removable else []) + [full // 4, full // 2, full]
        lat = {p: [0.0 if w == 0 else float(rng.uniform(0.05, 1.0)) for w in widths] for p in ("fp32", "int8")}
        rows.append(BlockLatency(f"b{b}", full, widths, lat, {p: [0.0] * len(widths) for p in lat}))
    transitions = [{k: float(rng.uniform(0, 0.2)) for k in ("fp32->int8", "int8->fp32") if rng.random() < 0.8}
                   for _ in range(blocks + 1)]
    return LatencyTable("random", "cpu-ort-1t", "measured", {}, [1, 3, 8, 8], float(rng.uniform(0, 0.5)), rows,
                        transitions, float(rng.uniform(-1, 1)))


@pytest.fixture(scope="module")
def tiny_problem(tmp_path_factory):
    """ResNet-20 (random weights), a tiny data slice, and a table shaped like the model: (space, sensitivity,
    evaluator), the evaluator's cache shared by the module's tests."""
    from hirelc_deploy.models import get_model_spec
    from hirelc_deploy.pipeline import DataConfig, prepare_data, sensitivity_of
    from hirelc_deploy.search import SearchSpace
    from hirelc_deploy.search.evaluate import EvalData, Evaluator

    root = tmp_path_factory.mktemp("data")
    make_image_folder(root / "train", 12, seed=1)
    spec = get_model_spec("resnet20")
    teacher = spec.build().eval()
    config = DataConfig(train_images=64, heldout_images=40, fisher_images=16, bn_images=32, batch_size=32)
    data = prepare_data(spec, root, config)
    sensitivity = sensitivity_of(teacher, spec, data, config)
    rows = []
    for info in spec.blocks():
        widths = ([0] if info.removable else []) + [info.full_width // 2, info.full_width]
        lat = {"fp32": [0.0 if w == 0 else 0.02 * w / 16 for w in widths],
               "int8": [0.0 if w == 0 else 0.012 * w / 16 for w in widths]}
        rows.append(BlockLatency(info.name, info.full_width, widths, lat, {p: [0.0] * len(widths) for p in lat}))
    table = LatencyTable("resnet20", "cpu-ort-1t", "measured", {}, [1, 3, 32, 32], 0.05, rows,
                         [{"fp32->int8": 0.005, "int8->fp32": 0.005} for _ in range(len(rows) + 1)])
    evaluator = Evaluator(teacher, spec.blocks(), spec.input_shape,
                          EvalData.from_prepared(data, bn_images=32, calibration_images=16), sensitivity)
    return SearchSpace(table), sensitivity, evaluator


def hirelc(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """Run ``hirelc ARGS`` in this process through the real entry point; (exit code, stdout, stderr)."""
    from hirelc_deploy.cli import main

    monkeypatch.setattr(sys, "argv", ["hirelc", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def fails(monkeypatch, capsys, *args) -> str:
    """Assert ``hirelc ARGS`` fails the way bad input must; the error line."""
    code, _, err = hirelc(monkeypatch, capsys, *args)
    assert code == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err
    return errors[0]
