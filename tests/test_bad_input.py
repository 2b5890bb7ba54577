"""Bad input to ``hirelc``: a one-line error naming the file or flag, exit code 2, no traceback, and nothing
written (the run directory is not even created). One test per kind of bad input, through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hirelc_deploy.budget import parse_budget
from hirelc_deploy.errors import InputError
from hirelc_deploy.latency.table import BlockLatency, LatencyTable
from hirelc_deploy.models import get_model_spec
from hirelc_deploy.targets import backend_of, current_fingerprint

from .conftest import TINY_TARGET, fails, make_image_folder


@pytest.fixture
def setup(tmp_path, tiny_target, tiny_cifar):
    """Valid inputs for ``compress`` on ResNet-20 (random weights, tiny data, the tiny target, a table)."""
    spec = get_model_spec("resnet20")
    weights = tmp_path / "r20.th"
    torch.save({"state_dict": spec.build().state_dict()}, weights)
    blocks = []
    for info in spec.blocks():
        widths = tiny_target.candidate_widths(info.full_width, info.prunable, info.removable)
        fp32 = [0.01 * w / info.full_width for w in widths]
        latency = {"fp32": fp32, "int8": [v / 2 for v in fp32]}
        blocks.append(BlockLatency(info.name, info.full_width, widths, latency, {p: [0.0] * len(widths)
                                                                                  for p in latency}))
    table = LatencyTable("resnet20", tiny_target.name, "measured", current_fingerprint(tiny_target).to_dict(),
                         [1, 3, 32, 32], 0.02, blocks, [{} for _ in range(len(blocks) + 1)],
                         method={"graph_format": backend_of(tiny_target).graph_format})
    table_path = table.save(tmp_path / "table.json")
    fastest = (table.fixed_ms + sum(min(min(v) for v in b.latency_ms.values()) for b in blocks)) / \
              (table.fixed_ms + sum(b.latency_ms["fp32"][-1] for b in blocks))
    run = tmp_path / "run"

    def args(**override):
        values = {"--model": "resnet20", "--weights": str(weights), "--data": str(tiny_cifar),
                  "--target": tiny_target.path, "--latency-budget": "0.6x", "--table": str(table_path),
                  "--run-dir": str(run), **override}
        return ["compress", *(x for k, v in values.items() if v is not None for x in (k, v))]

    return {"args": args, "run": run, "tmp": tmp_path, "weights": weights, "table": table, "fastest": fastest,
            "data": tiny_cifar}


@pytest.mark.parametrize("layout", ["missing", "empty", "no test split", "three classes"])
def test_bad_data_directory(monkeypatch, capsys, setup, layout):
    data = setup["tmp"] / "bad-data"
    if layout == "empty":
        data.mkdir()
    elif layout == "no test split":
        make_image_folder(data / "train", 2)
    elif layout == "three classes":
        make_image_folder(data / "train", 2, classes=3)
        make_image_folder(data / "test", 2, classes=3)
    error = fails(monkeypatch, capsys, *setup["args"](**{"--data": str(data)}))
    assert str(data) in error
    if layout == "three classes":
        assert "3 classes, the model expects 10" in error
    assert not setup["run"].exists()


def _checkpoint(setup, kind: str) -> tuple[Path, str]:
    path = setup["tmp"] / f"{kind}.th"
    if kind == "corrupt":
        path.write_bytes(b"\x00garbage" * 100)
        return path, "corrupt or truncated"
    if kind == "truncated":
        data = setup["weights"].read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return path, "corrupt or truncated"
    torch.save({"state_dict": get_model_spec("resnet56").build().state_dict()}, path)
    return path, "does not fit"


@pytest.mark.parametrize("kind", ["corrupt", "truncated", "another architecture"])
def test_bad_checkpoint(monkeypatch, capsys, setup, kind):
    path, reason = _checkpoint(setup, kind)
    error = fails(monkeypatch, capsys, *setup["args"](**{"--weights": str(path)}))
    assert str(path) in error and reason in error
    assert not setup["run"].exists()


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_pickle_that_would_execute_code(monkeypatch, capsys, setup):
    marker = setup["tmp"] / "pwned"
    path = setup["tmp"] / "evil.th"
    torch.save({"state_dict": _Evil(str(marker))}, path)
    error = fails(monkeypatch, capsys, *setup["args"](**{"--weights": str(path)}))
    assert str(path) in error and "refused" in error
    assert not marker.exists() and not setup["run"].exists()


def test_corrupt_onnx(monkeypatch, capsys, setup, tiny_target):
    path = setup["tmp"] / "model.onnx"
    path.write_bytes(b"\x08\x07not really a model")
    out = setup["tmp"] / "bench.json"
    error = fails(monkeypatch, capsys, "bench", str(path), "--target", tiny_target.path, "--out", str(out))
    assert str(path) in error and "corrupt" in error
    assert not out.exists()


@pytest.mark.parametrize("change,reason", [
    (lambda d: d["fingerprint"].update(cpu_model="Another CPU"), "another device"),
    (lambda d: d.update(schema_version=99), "schema_version"),
    # Measured on INT8 graphs written before their residual streams entered NHWC: other kernels, other times.
    (lambda d: d["method"].pop("graph_format"), "measured on graphs written as 'an earlier format'"),
])
def test_table_from_another_device_or_schema(monkeypatch, capsys, setup, change, reason):
    data = setup["table"].to_dict()
    change(data)
    path = setup["tmp"] / "foreign.json"
    path.write_text(json.dumps(data))
    error = fails(monkeypatch, capsys, *setup["args"](**{"--table": str(path)}))
    assert str(path) in error and reason in error
    assert not setup["run"].exists()


@pytest.mark.parametrize("edit,needle", [
    (lambda text: text + 'colour = "red"\n', "colour"),
    (lambda text: text.replace('precisions = ["fp32", "int8"]', 'precisions = ["fp32", "int4"]'), "int4"),
])
def test_bad_target_file(monkeypatch, capsys, setup, edit, needle):
    path = setup["tmp"] / "bad-target.toml"
    path.write_text(edit(TINY_TARGET.replace("[measure]", "")) if needle == "colour" else edit(TINY_TARGET))
    error = fails(monkeypatch, capsys, *setup["args"](**{"--target": str(path)}))
    assert "bad-target.toml" in error and needle in error
    assert not setup["run"].exists()


def test_budget_below_the_fastest_configuration_says_what_it_is(monkeypatch, capsys, setup):
    error = fails(monkeypatch, capsys, *setup["args"](**{"--latency-budget": "0.05x"}))
    assert "--latency-budget" in error and "fastest" in error and f"{setup['fastest']:.3f}x" in error
    assert not setup["run"].exists()


def test_budget_above_the_uncompressed_latency(monkeypatch, capsys, setup):
    error = fails(monkeypatch, capsys, *setup["args"](**{"--latency-budget": "1.5x"}))
    assert "--latency-budget" in error and "below 1x" in error
    assert not setup["run"].exists()
    # An absolute budget is checked against the uncompressed model once it has been timed.
    with pytest.raises(InputError, match=r"--latency-budget 5ms: 5.0000 ms is not below the uncompressed .* 4.0000"):
        parse_budget("5ms").resolve(4.0, 4.0, 1.0)
    with pytest.raises(InputError, match=r"below the fastest configuration the table allows, 1.0000 ms"):
        parse_budget("0.5ms").resolve(4.0, 4.0, 1.0)
    # The table's fastest configuration scales with the drift from the table to the device.
    with pytest.raises(InputError, match=r"below the fastest configuration the table allows, 2.0000 ms"):
        parse_budget("1.5ms").resolve(8.0, 4.0, 1.0)


def _stored_run(setup, name: str = "old-run", **change) -> Path:
    """A run directory as ``compress`` leaves it after its configuration is written (then killed)."""
    from hirelc_deploy.records import CompressConfig, CompressRunConfig
    from hirelc_deploy.runs import sha256
    from hirelc_deploy.targets import load_target

    run = setup["tmp"] / name
    run.mkdir()
    args = setup["args"]()
    config = CompressConfig("resnet20", str(setup["weights"]), str(setup["data"]), args[args.index("--target") + 1],
                            "0.6x", table=str(setup["tmp"] / "table.json"))
    fingerprint = current_fingerprint(load_target(config.target)).to_dict()
    record = CompressRunConfig(config, str(setup["weights"]), sha256(setup["weights"]), str(run), "0", "now",
                               fingerprint, {}).to_dict()
    (run / "config.json").write_text(json.dumps({**record, **change}))
    setup["table"].save(run / "latency_table.json")
    return run


def _listing(path: Path) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in path.iterdir()}


def test_resume_with_a_different_configuration(monkeypatch, capsys, setup):
    run = _stored_run(setup)
    before = _listing(run)
    error = fails(monkeypatch, capsys, "compress", "--resume", str(run), "--evals", "7")
    assert f"--resume {run}" in error and "--evals 7 (the run used 100)" in error
    error = fails(monkeypatch, capsys, *setup["args"](**{"--run-dir": None, "--latency-budget": "0.5x"}),
                  "--resume", str(run))
    assert "--latency-budget 0.5x (the run used 0.6x)" in error
    assert _listing(run) == before


def test_resume_on_another_device_or_changed_checkpoint(monkeypatch, capsys, setup):
    run = _stored_run(setup, weights_sha256="0" * 64)
    error = fails(monkeypatch, capsys, "compress", "--resume", str(run))
    assert "changed since the run started" in error
    other = _stored_run(setup, "other-device")
    record = json.loads((other / "config.json").read_text())
    record["fingerprint"]["cpu_model"] = "Another CPU"
    (other / "config.json").write_text(json.dumps(record))
    error = fails(monkeypatch, capsys, "compress", "--resume", str(other))
    assert "another device" in error and "Another CPU" in error


def test_run_directory_holding_a_run_is_not_overwritten(monkeypatch, capsys, setup):
    run = _stored_run(setup)
    before = _listing(run)
    error = fails(monkeypatch, capsys, *setup["args"](**{"--run-dir": str(run)}))
    assert f"--run-dir {run}" in error and f"--resume {run}" in error
    assert _listing(run) == before


@pytest.mark.parametrize("where", ["/proc/hirelc-run", "a-file/run"])
def test_run_directory_that_cannot_be_created(monkeypatch, capsys, setup, tmp_path, where):
    (tmp_path / "a-file").write_text("not a directory")
    run = Path(where) if where.startswith("/") else tmp_path / where
    error = fails(monkeypatch, capsys, *setup["args"](**{"--run-dir": str(run)}))
    assert f"--run-dir {run}: cannot create it" in error
    error = fails(monkeypatch, capsys, "profile", "--model", "resnet20", "--target", "trt-h100-b1", "--predict",
                  "--run-dir", str(run))
    assert f"--run-dir {run}: cannot create it" in error
