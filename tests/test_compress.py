"""``hirelc compress`` end to end on ResNet-20 with a small slice of the shared CIFAR-10 data."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from hirelc_deploy.policy import load_policy

from .conftest import TINY_TARGET

pytestmark = [pytest.mark.slow, pytest.mark.shared]

# The tests' tiny target with block removal in its grid: three widths per block, so the table profiles in seconds.
QUICK_TARGET = TINY_TARGET.replace('name = "tiny-cpu"', 'name = "quick-cpu"').replace(
    "width_fractions = [0.5, 1.0]", "width_fractions = [0.0, 0.5, 1.0]")
assert "quick-cpu" in QUICK_TARGET and "[0.0, 0.5, 1.0]" in QUICK_TARGET, "conftest.TINY_TARGET changed"


def _compress(tmp_path, shared, *args):
    """Run ``hirelc compress`` on ResNet-20 with the quick target, tables kept under ``tmp_path``."""
    target = tmp_path / "quick-cpu.toml"
    target.write_text(QUICK_TARGET)
    env = {**os.environ, "HIRELC_TABLES": str(tmp_path / "tables")}
    return subprocess.run(
        [sys.executable, "-m", "hirelc_deploy.cli", "compress", "--model", "resnet20",
         "--weights", str(shared / "models" / "cifar10-resnet" / "resnet20-12fca82f.th"),
         "--data", str(shared / "datasets" / "cifar10"), "--target", str(target), *args],
        capture_output=True, text=True, env=env, timeout=600)


def test_compress_end_to_end(tmp_path, shared):
    run = tmp_path / "run"
    result = _compress(tmp_path, shared, "--latency-budget", "0.6x", "--evals", "4", "--finetune-images", "256",
                       "--finetune-epochs", "0.5", "--heldout-images", "100", "--test-per-class", "5",
                       "--finalists", "2", "--run-dir", str(run), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)

    config = json.loads((run / "config.json").read_text())
    assert config["latency_budget"] == "0.6x" and config["evals"] == 4
    candidates = [json.loads(line) for line in (run / "candidates.jsonl").read_text().splitlines()]
    assert 1 <= len(candidates) <= 4
    baseline = json.loads((run / "baseline.json").read_text())
    # Every candidate is feasible by the table (the budget in table units).
    assert all(c["predicted_ms"] <= baseline["budget_table_ms"] + 1e-9 for c in candidates)
    assert (tmp_path / "tables" / "resnet20__quick-cpu.json").is_file()

    policy = load_policy(run / "policy.json")
    assert policy.predicted_latency_ms <= baseline["budget_table_ms"] + 1e-9
    chosen = max(candidates, key=lambda c: (c["top1"], -c["kl"]))
    assert summary["proxy_top1"] in {c["top1"] for c in candidates}
    assert summary["proxy_top1"] <= chosen["top1"]

    assert (run / "artifacts" / "model.onnx").is_file() and (run / "artifacts" / "manifest.json").is_file()
    bench = json.loads((run / "bench.json").read_text())
    assert bench["top1_images"] == summary["test_images"] == 50
    assert summary["budget_ms"] == pytest.approx(0.6 * summary["uncompressed_ms"])
    assert summary["meets_budget"] == (summary["measured_ms"] <= summary["budget_ms"])
    assert summary["bytes_after"] < summary["bytes_before"]
    assert 0.0 <= summary["top1_after"] <= 1.0 and summary["top1_before"] > 0.5
    assert summary.pop("run_dir") == str(run)
    assert summary == json.loads((run / "summary.json").read_text())


def test_compress_refuses_a_budget_below_the_fastest_configuration(tmp_path, shared):
    result = _compress(tmp_path, shared, "--latency-budget", "0.01x", "--evals", "2", "--finetune-images", "64",
                       "--heldout-images", "50", "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2
    assert "--latency-budget 0.01x" in result.stderr and "fastest configuration" in result.stderr
    assert "Traceback" not in result.stderr
