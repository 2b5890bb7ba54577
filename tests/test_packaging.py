"""A wheel install (not the editable one) carries the shipped targets and keeps tables in $HIRELC_HOME."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from .conftest import noise_tolerant

REPO = Path(__file__).resolve().parents[1]


def _run(cmd: list, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, f"{cmd} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.slow
def test_wheel_install_lists_shipped_targets_and_profiles_into_hirelc_home(tmp_path):
    # Built from a copy of what the build reads, so no build/ or egg-info lands in the working tree and no stale
    # build/lib file from an earlier build can slip into the wheel.
    source = tmp_path / "source"
    shutil.copytree(REPO / "hirelc_deploy", source / "hirelc_deploy", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "agent", source / "agent", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for project in (source, source / "agent"):
        _run([sys.executable, "-m", "pip", "wheel", project, "--no-deps", "--no-build-isolation", "-w",
              tmp_path / "dist"])
    (wheel,) = (tmp_path / "dist").glob("hirelc_deploy-*.whl")
    (agent_wheel,) = (tmp_path / "dist").glob("hirelc_agent-*.whl")
    assert "hirelc_deploy/targets/shipped/cpu-ort-1t.toml" in zipfile.ZipFile(wheel).namelist()

    venv = tmp_path / "venv"
    # This environment's pip installs into the new one (pip --python), which saves seeding it with its own pip.
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    python, hirelc = venv / "bin" / "python", venv / "bin" / "hirelc"
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel, agent_wheel])
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip())
    # A .pth line only adds a directory to sys.path, after the venv's own site-packages: the dependencies become
    # importable while the parent environment's editable-install finder (started by an import line in a .pth
    # there) never runs, so hirelc_deploy can only come from the wheel.
    (site / "parent_env.pth").write_text(sysconfig.get_path("purelib") + "\n")

    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "HIRELC_PROFILES", "HIRELC_TABLES"}}
    env["HIRELC_HOME"] = str(home)
    imported = _run([python, "-c", "import hirelc_deploy, hirelc_agent; print(hirelc_deploy.__file__); "
                                   "print(hirelc_agent.__file__)"], cwd=work, env=env)
    assert all(Path(line).is_relative_to(venv) for line in imported.stdout.split())
    assert "hirelc-agent" in _run([venv / "bin" / "hirelc-agent", "--version"], cwd=work, env=env).stdout

    listing = json.loads(_run([hirelc, "targets", "--json"], cwd=work, env=env).stdout)
    assert listing["cpu-ort-1t"]["origin"] == "shipped"
    assert Path(listing["cpu-ort-1t"]["path"]).is_relative_to(venv)

    steady = noise_tolerant("cpu-ort-1t", tmp_path)
    summary = json.loads(_run([hirelc, "-q", "profile", "--model", "resnet20", "--target", steady, "--fractions",
                               "0.5,1", "--json"], cwd=work, env=env).stdout)
    table = home / "tables" / "resnet20__cpu-ort-1t.json"
    assert Path(summary["table"]) == table
    stored = json.loads(table.read_text())
    assert (stored["model"], stored["target"], stored["kind"]) == ("resnet20", "cpu-ort-1t", "measured")
