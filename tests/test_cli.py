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
    from tests.test_table import _table

    data = _table().to_dict()
    data["model"] = "resnet20"
    data["fingerprint"]["cpu_model"] = "Another CPU"
    table.write_text(json.dumps(data))
    result = hirelc("profile", "--model", "resnet20", "--target", tiny_target.path, "--table", str(table),
                    "--validate", "1", "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2 and "another device" in result.stderr and "t.json" in result.stderr


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
