"""Shared fixtures: tiny targets, the shared-data location, and seeding."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from hirelc_deploy.settings import shared_dir
from hirelc_deploy.targets import parse_target

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
"""


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
