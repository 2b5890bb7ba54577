"""``hirelc compress`` end to end on ResNet-20 with a small slice of the shared CIFAR-10 data."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import onnx
import pytest

from hirelc_deploy.artifacts import load_manifest
from hirelc_deploy.policy import load_policy
from hirelc_deploy.settings import shared_dir

from .conftest import QUICK_RUN, QUICK_TARGET

pytestmark = [pytest.mark.slow, pytest.mark.shared]

def _command(tmp_path, shared, *args) -> list[str]:
    """``hirelc compress`` on ResNet-20 with the quick target (its file under ``tmp_path``)."""
    target = tmp_path / "quick-cpu.toml"
    target.write_text(QUICK_TARGET)
    return [sys.executable, "-m", "hirelc_deploy.cli", "compress", "--model", "resnet20",
            "--weights", str(shared / "models" / "cifar10-resnet" / "resnet20-12fca82f.th"),
            "--data", str(shared / "datasets" / "cifar10"), "--target", str(target), *args]


def _env(tmp_path) -> dict:
    """Tables kept under ``tmp_path``, so a test profiles its own and never touches a stored one."""
    return {**os.environ, "HIRELC_TABLES": str(tmp_path / "tables")}


def _compress(tmp_path, shared, *args):
    return subprocess.run(_command(tmp_path, shared, *args), capture_output=True, text=True, env=_env(tmp_path),
                          timeout=600)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """One uninterrupted quick run: (its directory, the --json output, the directory its tables are in)."""
    root = shared_dir()
    if not (root / "models" / "cifar10-resnet").is_dir():
        pytest.skip(f"shared data not found at {root} (set HIRELC_SHARED)")
    tmp = tmp_path_factory.mktemp("compress")
    run = tmp / "run"
    other = tmp / "quick-cpu-b2.toml"  # the policy is also checked on a second target: batch 2
    other.write_text(QUICK_TARGET.replace('name = "quick-cpu"', 'name = "quick-cpu-b2"').replace(
        "batch_size = 1", "batch_size = 2"))
    result = _compress(tmp, root, *QUICK_RUN, "--run-dir", str(run), "--check-targets", str(other), "--json")
    assert result.returncode == 0, result.stderr
    return run, json.loads(result.stdout), tmp


def _candidates(run) -> list[dict]:
    return [json.loads(line) for line in (run / "candidates.jsonl").read_text().splitlines()]


def test_compress_end_to_end(uninterrupted):
    run, summary, tmp_path = uninterrupted
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["latency_budget"] == "0.6x" and config["config"]["evals"] == 6
    assert config["weights_sha256"].startswith("12fca82f")
    # ../shared's CIFAR-10 at 32x32 is decoded into memory under the CIFAR recipe, and trained on this CPU.
    plan = config["data"]
    assert (plan["loading"], plan["preprocess"]["style"], plan["workers"], plan["device"]) == ("memory", "cifar", 0,
                                                                                              "cpu")
    assert plan["train_folder"].endswith("train") and summary["bad_images"] == []
    candidates = _candidates(run)
    # The closed loop searches a corrected table again (its own evaluations, against its own budget) when the
    # finalists missed the budget on the device, which a noisy machine decides: only the first search is bounded by
    # --evals and by the budget in the table's units (the closed loop's searches: test_budget_loop.py).
    first = [c for c in candidates if "closed-loop round" not in c["strategy"]]
    assert 1 <= len(first) <= 6
    baseline = json.loads((run / "baseline.json").read_text())
    assert all(c["predicted_ms"] <= baseline["budget_table_ms"] + 1e-9 for c in first)
    assert (tmp_path / "tables" / "resnet20__quick-cpu.json").is_file()

    policy = load_policy(run / "policy.json")
    loop = json.loads((run / "finalists.json").read_text())
    if next(r["round"] for r in loop["rows"] if r["chosen"]) == 0:  # later rounds answer to their corrected table
        assert policy.predicted_latency_ms <= baseline["budget_table_ms"] + 1e-9
    chosen = max(candidates, key=lambda c: (c["top1"], -c["kl"]))
    assert summary["proxy_top1"] in {c["top1"] for c in candidates}
    assert summary["proxy_top1"] <= chosen["top1"]

    manifest = load_manifest(run / "artifacts")
    assert set(manifest.files) == {"model.onnx", "baseline_fp32.onnx"} and manifest.verify(run / "artifacts") == []
    assert not [p for p in run.rglob("*") if p.name.endswith(".tmp")]
    bench = json.loads((run / "bench.json").read_text())
    assert bench["top1_images"] == summary["test_images"] == 50
    assert summary["budget_ms"] == pytest.approx(0.6 * summary["uncompressed_ms"])
    assert summary["meets_budget"] == (summary["measured_ms"] <= summary["budget_ms"])
    assert summary["bytes_after"] < summary["bytes_before"]
    assert 0.0 <= summary["top1_after"] <= 1.0 and summary["top1_before"] > 0.5
    summary = dict(summary)
    assert summary.pop("run_dir") == str(run) and summary.pop("report") == str(run / "report.html")
    checks = summary.pop("checks")
    assert checks == json.loads((run / "checks.json").read_text())["checks"]
    assert [(c["target"], c["batch_size"]) for c in checks] == [("quick-cpu-b2", 2)]
    check = checks[0]
    # A fractional budget is of each target's own uncompressed model, timed beside the engine.
    assert check["budget_ms"] == pytest.approx(0.6 * check["latency"]["uncompressed_ms"])
    assert (check["budget_ratio"] <= 1.0) == (check["latency"]["engine_ms"] <= check["budget_ms"])
    other = load_manifest(run / "checks" / "quick-cpu-b2")
    assert other.policy == manifest.policy and other.verify(run / "checks" / "quick-cpu-b2") == []
    graph = onnx.load(run / "checks" / "quick-cpu-b2" / "model.onnx").graph
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2
    assert summary == json.loads((run / "summary.json").read_text())
    # The quick target's [measure] final_processes = 3: three processes, more only while too few ran fast.
    final = json.loads((run / "final_latency.json").read_text())
    assert len(final["engine_rounds_ms"]) == 3 or final["fast"].count(True) == 3 or len(final["fast"]) == 9
    assert json.loads((run / "status.json").read_text())["state"] == "complete"
    assert "stage: the timing of the finalists" in (run / "run.log").read_text()
    assert (run / "report.html").stat().st_size > 10_000
    assert "The policy on other targets" in (run / "report.html").read_text()


def test_compress_refuses_a_budget_below_the_fastest_configuration(uninterrupted, tmp_path, shared):
    tables = uninterrupted[2]  # the quick run's table, so this run needs no profile of its own
    result = _compress(tables, shared, "--latency-budget", "0.01x", "--evals", "2", "--finetune-images", "64",
                       "--heldout-images", "50", "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2
    assert "--latency-budget 0.01x" in result.stderr and "fastest configuration" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def _without_timing(records: list[dict]) -> list[dict]:
    """The search's own records without their timings; the closed loop's searches (whether one runs depends on
    what the finalists measured) are left out."""
    return [{k: v for k, v in r.items() if k not in ("seconds", "cached")} for r in records
            if "closed-loop round" not in r["strategy"]]


def test_kill_9_during_the_search_then_resume_ends_like_the_uninterrupted_run(uninterrupted, tmp_path, shared):
    """A copy of the uninterrupted run as it stood when its search began (same measurements, so the same
    calibrated table) is resumed, killed with SIGKILL after two evaluations, and resumed again (with Ray's
    executor where it is installed): it must record every evaluation once and end with the uninterrupted run's
    evaluations and best configuration."""
    whole, _, tables = uninterrupted
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json", "latency_table.json", "sensitivity.json", "calibration.json",
                 "latency_table_calibrated.json", "baseline.json"):
        shutil.copy(whole / name, run / name)
    command = _command(tables, shared, "--resume", str(run))
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(tables))
    candidates = run / "candidates.jsonl"
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        if candidates.exists() and len(candidates.read_text().splitlines()) >= 2:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    assert process.wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed"
    before = _candidates(run)
    assert json.loads((run / "status.json").read_text())["state"] == "running"

    # Resumed with the other executor where Ray is installed: the run must end the same.
    executor = ["--executor", "ray"] if importlib.util.find_spec("ray") else []
    result = subprocess.run(command + ["--json", *executor], capture_output=True, text=True, env=_env(tables),
                            timeout=600)
    assert result.returncode == 0, result.stderr
    if executor:
        assert json.loads((run / "search.json").read_text())["executor"].startswith("ray")
    after = _candidates(run)
    assert after[:len(before)] == before
    assert _without_timing(after) == _without_timing(_candidates(whole))
    assert json.loads((run / "search.json").read_text())["best"]["widths"] == \
           json.loads((whole / "search.json").read_text())["best"]["widths"]
    assert json.loads(result.stdout)["measured_ms"] > 0 and (run / "report.html").is_file()
