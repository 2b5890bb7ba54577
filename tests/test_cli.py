import json
import subprocess
import sys

import pytest


def hirelc(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "hirelc_deploy.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_help_shows_the_workflow():
    result = hirelc("--help")
    assert result.returncode == 0
    assert "Workflow" in result.stdout and "hirelc profile" in result.stdout


@pytest.mark.parametrize("args,needle", [
    (["profile", "--model", "vgg", "--target", "cpu-ort-1t"], "--model: unknown model 'vgg'"),
    (["profile", "--model", "resnet20", "--target", "nope"], "--target: unknown target 'nope'"),
    (["profile", "--model", "resnet20", "--target", "cpu-ort-1t", "--fractions", "0,2"], "--fractions"),
])
def test_bad_input_is_one_line_and_nonzero(args, needle, tmp_path):
    result = hirelc(*args, "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2
    assert needle in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_foreign_table_is_refused(tmp_path, tiny_target):
    table = tmp_path / "t.json"
    from .conftest import toy_table as _table

    data = _table().to_dict()
    data["model"] = "resnet20"
    data["fingerprint"]["cpu_model"] = "Another CPU"
    table.write_text(json.dumps(data))
    result = hirelc("profile", "--model", "resnet20", "--target", tiny_target.path, "--table", str(table),
                    "--validate", "1", "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2 and "another device" in result.stderr and "t.json" in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_profile_writes_table_and_run_directory(tmp_path, tiny_target):
    out = tmp_path / "table.json"
    run = tmp_path / "run"
    result = hirelc("--quiet", "profile", "--model", "resnet20", "--target", tiny_target.path, "--out", str(out),
                    "--validate", "1", "--run-dir", str(run), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["validation"]["all"]["count"] == 3
    assert json.loads(out.read_text())["model"] == "resnet20"
    assert {"config.json", "latency_table.json", "validation.json"} <= {p.name for p in run.iterdir()}
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def _checkpoint(tmp_path, name="resnet20"):
    import torch

    from hirelc_deploy.models import get_model_spec

    path = tmp_path / f"{name}.th"
    torch.manual_seed(0)
    torch.save({"state_dict": get_model_spec(name).build().state_dict()}, path)
    return path


def _tiny_table(tmp_path, tiny_target):
    from hirelc_deploy.latency.table import BlockLatency
    from hirelc_deploy.models import get_model_spec

    from .conftest import toy_table as _table

    table = _table()
    table.model, table.target = "resnet20", tiny_target.name
    table.blocks = [BlockLatency(b.name, b.full_width, [b.full_width // 2, b.full_width],
                                 {"fp32": [1.0, 2.0], "int8": [0.5, 1.0]}, {"fp32": [0, 0], "int8": [0, 0]})
                    for b in get_model_spec("resnet20").blocks()]
    table.transitions_ms = [{} for _ in range(10)]
    return table.save(tmp_path / "table.json")


def test_plan_writes_policy_with_labelled_prediction(tmp_path, tiny_target):
    table = _tiny_table(tmp_path, tiny_target)
    result = hirelc("plan", "--table", str(table), "--fraction", "0.5", "--precision", "int8",
                    "--out", str(tmp_path / "p.json"))
    assert result.returncode == 0, result.stderr
    policy = json.loads((tmp_path / "p.json").read_text())
    assert [b["width"] for b in policy["blocks"]] == [8] * 3 + [16] * 3 + [32] * 3
    assert policy["predicted_latency_ms"] == pytest.approx(10 + 9 * 0.5)
    assert "predicted" in result.stdout and "not a measurement" in result.stdout
    bad = hirelc("plan", "--table", str(table), "--precision", "fp16", "--out", str(tmp_path / "q.json"))
    assert bad.returncode == 2 and "--precision: 'fp16'" in bad.stderr


def test_export_bad_inputs(tmp_path, tiny_target, tiny_cifar):
    table = _tiny_table(tmp_path, tiny_target)
    assert hirelc("plan", "--table", str(table), "--out", str(tmp_path / "p.json")).returncode == 0
    weights = _checkpoint(tmp_path)
    common = ["export", "--model", "resnet20", "--target", tiny_target.path, "--policy", str(tmp_path / "p.json"),
              "--out", str(tmp_path / "out"), "--table", str(table)]
    missing = hirelc(*common, "--weights", str(weights), "--data", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "nowhere" in missing.stderr and "does not exist" in missing.stderr
    wrong_arch = hirelc(*common, "--weights", str(_checkpoint(tmp_path, "resnet32")), "--data", str(tiny_cifar))
    assert wrong_arch.returncode == 2 and "resnet32.th: does not fit" in wrong_arch.stderr, wrong_arch.stderr
    other_model = hirelc(*[a if a != "resnet20" else "resnet32" for a in common], "--weights",
                         str(_checkpoint(tmp_path, "resnet32")), "--data", str(tiny_cifar))
    assert other_model.returncode == 2 and "--policy: written for model resnet20" in other_model.stderr
    assert not (tmp_path / "out" / "model.onnx").exists()


def test_bench_bad_inputs(tmp_path, tiny_target):
    corrupt = tmp_path / "broken.onnx"
    corrupt.write_bytes(b"\x08\x07garbage" * 10)
    result = hirelc("bench", str(corrupt), "--target", tiny_target.path)
    assert result.returncode == 2 and "broken.onnx: corrupt or unreadable ONNX model" in result.stderr
    result = hirelc("bench", str(tmp_path / "none.onnx"), "--target", tiny_target.path)
    assert result.returncode == 2 and "none.onnx: ONNX file not found" in result.stderr


@pytest.mark.slow
def test_export_then_bench_end_to_end(tmp_path, tiny_target, tiny_cifar):
    table = _tiny_table(tmp_path, tiny_target)
    assert hirelc("plan", "--table", str(table), "--fraction", "0.5", "--precision", "int8",
                  "--out", str(tmp_path / "p.json")).returncode == 0
    out = tmp_path / "artifact"
    exported = hirelc("--quiet", "export", "--model", "resnet20", "--weights", str(_checkpoint(tmp_path)),
                      "--data", str(tiny_cifar), "--target", tiny_target.path, "--policy", str(tmp_path / "p.json"),
                      "--out", str(out), "--table", str(table), "--finetune-epochs", "0.5",
                      "--finetune-images", "64")
    assert exported.returncode == 0, exported.stderr
    assert {"model.onnx", "baseline_fp32.onnx", "manifest.json", "policy.json", "sensitivity.json"} <= \
        {p.name for p in out.iterdir()}
    assert "9 INT8 blocks running quantized kernels" in exported.stdout
    benched = hirelc("--quiet", "bench", str(out / "model.onnx"), "--target", tiny_target.path, "--data",
                     str(tiny_cifar), "--baseline", str(out / "baseline_fp32.onnx"), "--json")
    assert benched.returncode == 0, benched.stderr
    result = json.loads(benched.stdout)
    assert result["top1_images"] == 40 and 0.0 <= result["top1"] <= 1.0 and result["speedup"] > 0
    assert result["file_bytes"] < result["baseline_file_bytes"]
