"""``hirelc report``: one self-contained HTML file per run directory, from synthetic run records."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hirelc_deploy.errors import InputError
from hirelc_deploy.artifacts.manifest import Manifest, file_entry
from hirelc_deploy.latency.calibrate import Calibration
from hirelc_deploy.latency.validate import ValidationReport, ValidationRow
from hirelc_deploy.policy import Policy
from hirelc_deploy.records import (
    Baseline,
    BenchResult,
    Candidate,
    CompressConfig,
    CompressRunConfig,
    CompressSummary,
    FinalLatency,
    Finalist,
    Finalists,
    LoopRound,
    ProfileRunConfig,
    SearchRecord,
    Status,
)
from hirelc_deploy.report import write_report
from hirelc_deploy.report.plots import pareto_front
from hirelc_deploy.sensitivity import BlockSensitivity, Sensitivity

from .conftest import random_table

PNG_URI = re.compile(r'data:image/png;base64,([A-Za-z0-9+/=]+)')
FINGERPRINT = {"cpu_model": "Test CPU", "cpu_count": 4, "runtime": "onnxruntime", "runtime_version": "1.0",
               "execution_provider": "CPUExecutionProvider", "threads": 1, "batch_size": 1}


def _json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1))


def _candidates(table, strategies: list[str], per_strategy: int, rng) -> list[Candidate]:
    rows = []
    for strategy in strategies:
        for index in range(per_strategy):
            widths = [int(rng.choice(b.widths)) for b in table.blocks]
            precisions = [str(rng.choice(["fp32", "int8"])) for _ in table.blocks]
            rows.append(Candidate(strategy, index, widths, precisions, table.predict(widths, precisions),
                                  float(rng.uniform(0.5, 0.9)), 0.9, 0.1, 0.5, False))
    return rows


def make_compress_run(root: Path, strategies=("hirelc",), per_strategy: int = 8) -> dict:
    """A finished compress run directory with every record compress writes; returns its summary."""
    rng = np.random.default_rng(0)
    table = random_table(0, 5)
    table.save(root / "latency_table.json")
    strategy = strategies[0]
    config = CompressConfig("random", "w.th", "data", "cpu-ort-1t", "0.6x", strategy=strategy, evals=per_strategy)
    CompressRunConfig(config, "w.th", "0" * 64, str(root), "0.1.0", "2026-01-01T00:00:00+00:00", FINGERPRINT,
                      {"python": "3.11", "torch": "2", "onnxruntime": "1"}).save(root / "config.json")
    Sensitivity("random", 16, [BlockSensitivity(b.name, 100, float(rng.uniform(1, 9)), 0.1, float(rng.uniform()))
                               for b in table.blocks]).save(root / "sensitivity.json")
    Calibration({"fp32": 1.0, "int8": 1.0, "boundaries": 1.0}).save(root / "calibration.json")
    rows = _candidates(table, list(strategies), per_strategy, rng)
    budget_table_ms = float(np.median([r.predicted_ms for r in rows]))
    drift = 1.1
    Baseline(2.0, 2.0 / drift, drift, budget_table_ms * drift, budget_table_ms, "measured here").save(
        root / "baseline.json")
    (root / "candidates.jsonl").write_text("".join(json.dumps(r.to_dict()) + "\n" for r in rows))
    feasible = sorted((r for r in rows if r.predicted_ms <= budget_table_ms), key=lambda r: -r.top1)[:3]
    chosen = feasible[0]
    SearchRecord(strategy, 0, per_strategy, per_strategy, budget_table_ms, 1.0, chosen.index,
                 chosen.to_dict(), 0.75, 0.25).save(root / "search.json")
    # Two closed-loop rounds: the first finalist missed the budget, the next round's met it (both of its
    # finalists, each then distilled).
    budget_ms = budget_table_ms * drift
    rounds = [0, 1, 1][: len(feasible)]
    Finalists([Finalist(r.index, r.widths, r.precisions, r.top1, r.predicted_ms, budget_ms * (1.08 - 0.1 * k), 0.01,
                        2.0, budget_ms, k > 0, r is chosen, rounds[k], r.top1 + 0.01 * k if k > 0 else None)
               for k, r in enumerate(feasible[::-1])],
              [LoopRound(0, budget_table_ms, {}, 0, False),
               LoopRound(1, budget_table_ms * 0.95, {"fp32": 1.0, "int8": 1.2, "boundaries": 1.0}, 4, True)],
              -0.5).save(root / "finalists.json")
    policy = Policy.from_lists("random", "cpu-ort-1t", [b.name for b in table.blocks], chosen.widths, chosen.precisions,
                               predicted_latency_ms=chosen.predicted_ms,
                               notes={"strategy": strategy, "evaluation": chosen.index, "proxy_top1": chosen.top1})
    policy.save(root / "policy.json")
    artifacts = root / "artifacts"
    artifacts.mkdir()
    (artifacts / "model.onnx").write_bytes(b"engine bytes")
    (artifacts / "baseline_fp32.onnx").write_bytes(b"baseline bytes, larger")
    Manifest("random", "cpu-ort-1t", policy.to_dict(), chosen.predicted_ms, "measured", {},
             {name: file_entry(artifacts / name) for name in ("model.onnx", "baseline_fp32.onnx")}).write(artifacts)
    BenchResult("model.onnx", "cpu-ort-1t", FINGERPRINT, [1, 3, 32, 32], 12).save(root / "bench.json")
    measured = chosen.predicted_ms * drift * 1.0123456
    summary = CompressSummary(
        model="random", target="cpu-ort-1t", strategy=strategy, backend="onnxruntime", latency_kind="measured",
        table_kind="measured", table="measured here", budget="0.6x", budget_ms=budget_table_ms * drift,
        budget_ratio=0.9, meets_budget=True, verdict="meets the budget", table_drift=drift,
        uncompressed_ms_at_start=2.0, predicted_ms=chosen.predicted_ms * drift, predicted_with="calibrated table",
        predicted_table_ms=chosen.predicted_ms,
        predicted_uncompressed_ms=2.0, measured_ms=measured, measured_rounds_ms=[measured * 0.97, measured,
                                                                                 measured * 1.2],
        uncompressed_ms=2.1, uncompressed_rounds_ms=[2.0, 2.1, 2.2], speedup=2.1 / measured, top1_before=0.8,
        top1_after=0.79, test_images=123, top1_through="the exported model", bytes_before=1_000_000,
        bytes_after=300_000, proxy_top1=chosen.top1)
    summary.save(root / "summary.json")
    FinalLatency(measured, 2.1, [measured * 0.97, measured, measured * 1.2], [2.0, 2.1, 2.2], 2.1 / measured,
                 [True, True, False], "median of the 2 fast-state processes of 3", 2.0).save(
        root / "final_latency.json")
    return summary.to_dict()


def make_profile_run(root: Path, validate: int = 3) -> ValidationReport:
    """A profile run directory: config, latency table and (when ``validate``) validation records."""
    table = random_table(1, 4)
    ProfileRunConfig("random", "cpu-ort-1t", "cpu-ort-1t.toml", FINGERPRINT, validate=validate).save(
        root / "config.json")
    table.save(root / "latency_table.json")
    full = [b.full_width for b in table.blocks]
    half = [b.widths[-2] for b in table.blocks]
    mixed = ["int8", "fp32"] * (len(full) // 2)
    rows = [ValidationRow("fp32-full", full, ["fp32"] * len(full), 1.0, 1.02, 0.02),
            ValidationRow("int8-half", half, ["int8"] * len(half), 0.5, 0.56, 0.03),
            ValidationRow("random<0>", half, mixed, 0.7, 0.68, 0.01)]
    report = ValidationReport("random", "cpu-ort-1t", rows)
    report.save(root / "validation.json")
    return report


def images(html: str) -> list[Image.Image]:
    """Every embedded PNG, decoded and checked by PIL."""
    found = []
    for payload in PNG_URI.findall(html):
        image = Image.open(io.BytesIO(base64.b64decode(payload, validate=True)))
        image.verify()
        found.append(image)
    return found


def assert_self_contained(html: str) -> None:
    for external in ('src="http', "src='http", "<script", "<link", "url(http", "@import"):
        assert external not in html


def test_compress_report_is_one_self_contained_file(tmp_path):
    make_compress_run(tmp_path)
    path = write_report(tmp_path)
    assert path == tmp_path / "report.html"
    html = path.read_text(encoding="utf-8")
    assert [image.format for image in images(html)] == ["PNG"] * 7
    assert html.count("<img ") == 7
    assert "Closed loop on the budget" in html and "Final timing, process by process" in html
    assert "1 s evaluating, 0 s in the strategy" in html
    assert "rank correlation of the proxy and the distilled top-1: -0.50" in html
    assert_self_contained(html)
    assert "incomplete run" not in html
    assert not list(tmp_path.glob(".report.html.*"))


def test_final_table_shows_the_summary(tmp_path):
    summary = make_compress_run(tmp_path)
    html = write_report(tmp_path).read_text(encoding="utf-8")
    rounds = summary["measured_rounds_ms"]
    for shown in (f"{summary['measured_ms']:.4f}", f"{min(rounds):.4f}", f"{max(rounds):.4f}",
                  f"{summary['budget_ms']:.4f}", f"{summary['predicted_ms']:.4f}", f"{summary['speedup']:.2f}",
                  summary["verdict"], str(summary["test_images"]), "predicted, not measured"):
        assert shown in html
    for name in ("model.onnx", "baseline_fp32.onnx", "manifest.json"):
        assert hashlib.sha256((tmp_path / "artifacts" / name).read_bytes()).hexdigest() in html


def test_artifacts_are_checked_against_the_manifest(tmp_path):
    make_compress_run(tmp_path)
    html = write_report(tmp_path).read_text(encoding="utf-8")
    assert html.count("matches the manifest") == 2 and "DIFFERS" not in html
    (tmp_path / "artifacts" / "model.onnx").write_bytes(b"engine bytes, changed after the export")
    html = write_report(tmp_path).read_text(encoding="utf-8")
    assert html.count("matches the manifest") == 1 and html.count("DIFFERS from the manifest") == 1
    (tmp_path / "artifacts" / "model.onnx").unlink()
    assert "MISSING (in manifest)" in write_report(tmp_path).read_text(encoding="utf-8")


def test_record_strings_are_escaped(tmp_path):
    strategy = '<img src="http://x">&co'
    make_compress_run(tmp_path, strategies=(strategy, "random"), per_strategy=5)
    html = write_report(tmp_path).read_text(encoding="utf-8")
    assert strategy not in html
    assert "&lt;img src=&quot;http://x&quot;&gt;&amp;co" in html
    assert_self_contained(html)
    assert len(images(html)) == 7


def test_incomplete_run_renders_what_exists(tmp_path):
    make_compress_run(tmp_path)
    for name in ("search.json", "finalists.json", "policy.json", "bench.json", "summary.json", "final_latency.json"):
        (tmp_path / name).unlink()
    for path in sorted((tmp_path / "artifacts").iterdir()):
        path.unlink()
    (tmp_path / "artifacts").rmdir()
    lines = (tmp_path / "candidates.jsonl").read_text().splitlines()
    damaged = "\n".join(lines[:5]) + "\n" + lines[5][: len(lines[5]) // 2]
    (tmp_path / "candidates.jsonl").write_text(damaged)
    html = write_report(tmp_path).read_text(encoding="utf-8")
    assert "incomplete run: no summary.json yet" in html
    assert "during the search: 5 of 8 evaluations recorded" in html
    assert "candidates.jsonl is cut short" in html
    assert len(images(html)) == 4  # candidates, sensitivity, progress, table: nothing was timed for real yet
    assert (tmp_path / "candidates.jsonl").read_text() == damaged  # the report never rewrites a record


def test_failed_run_shows_its_status(tmp_path):
    make_compress_run(tmp_path)
    (tmp_path / "summary.json").unlink()
    Status("failed", "benchmarking the engine", "2026-01-01T00:00:00+00:00", "engine <crashed>").save(
        tmp_path / "status.json")
    html = write_report(tmp_path).read_text(encoding="utf-8")
    assert "incomplete run: no summary.json yet" in html
    assert "status.json: failed at stage “benchmarking the engine”" in html
    assert "engine &lt;crashed&gt;" in html


def test_damaged_line_before_the_last_is_an_error(tmp_path):
    make_compress_run(tmp_path)
    lines = (tmp_path / "candidates.jsonl").read_text().splitlines()
    lines[2] = lines[2][:10]
    (tmp_path / "candidates.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"candidates\.jsonl: line 3"):
        write_report(tmp_path)


def test_run_without_command_key_is_a_compress_run(tmp_path):
    make_compress_run(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["command"]
    _json(tmp_path / "config.json", config)
    assert "hirelc compress" in write_report(tmp_path).read_text(encoding="utf-8")


def test_predicted_table_is_flagged(tmp_path):
    make_compress_run(tmp_path)
    table = json.loads((tmp_path / "latency_table.json").read_text())
    _json(tmp_path / "latency_table.json", {**table, "kind": "predicted"})
    html = write_report(tmp_path).read_text(encoding="utf-8")
    assert "latency table is PREDICTED" in html


def test_profile_report_shows_table_and_validation(tmp_path):
    report = make_profile_run(tmp_path)
    html = write_report(tmp_path).read_text(encoding="utf-8")
    assert len(images(html)) == 2
    assert_self_contained(html)
    assert "hirelc profile" in html and "incomplete run" not in html
    assert "random&lt;0&gt;" in html
    summary = report.summary()["all"]
    assert f"{summary['median_ape']:.2f}%" in html and f"{summary['max_ape']:.2f}%" in html


def test_profile_report_without_validation_says_incomplete(tmp_path):
    make_profile_run(tmp_path)
    (tmp_path / "validation.json").unlink()
    html = write_report(tmp_path).read_text(encoding="utf-8")
    assert len(images(html)) == 1
    assert "incomplete run: no validation.json yet" in html


def test_non_run_directories_are_refused(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    for path in (empty, tmp_path / "missing", a_file):
        with pytest.raises(InputError, match=re.escape(str(path))):
            write_report(path)
    assert not (empty / "report.html").exists()


def test_corrupt_records_name_the_file(tmp_path):
    make_compress_run(tmp_path)
    summary = tmp_path / "summary.json"
    summary.write_text('{"measured_ms": 1.0,')
    with pytest.raises(InputError, match=re.escape(str(summary))):
        write_report(tmp_path)
    _json(summary, {"measured_ms": "fast"})
    with pytest.raises(InputError, match=re.escape(str(summary))):
        write_report(tmp_path)


def test_pareto_front_keeps_exactly_the_undominated_points():
    rng = np.random.default_rng(3)
    points = [(float(x), float(y)) for x, y in rng.uniform(size=(60, 2)).round(2)]
    front = pareto_front(points)

    def dominated(p):
        return any(q[0] <= p[0] and q[1] >= p[1] and q != p for q in points)

    assert set(front) == {p for p in points if not dominated(p)}
    assert [x for x, _ in front] == sorted(x for x, _ in front)
