"""The README's Python API example runs as written, and every call it documents exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import hirelc_deploy

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_every_documented_api_call_exists():
    called = {name for block in BLOCKS for name in re.findall(r"\bhd\.(\w+)\(", block)}
    assert {"profile", "plan_uniform", "export", "bench", "compress"} <= called
    assert all(hasattr(hirelc_deploy, name) for name in called), called - set(dir(hirelc_deploy))


@pytest.mark.slow
@pytest.mark.shared
def test_the_python_api_example_runs(shared, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HIRELC_SHARED", str(shared))
    namespace: dict = {}
    exec(compile(BLOCKS[0], str(README), "exec"), namespace)  # noqa: S102 - the README's own code
    assert namespace["profiled"].table_path.is_file() and namespace["profiled"].table.kind == "measured"
    assert (tmp_path / "r20-int8" / "manifest.json").is_file()
    measured = namespace["measured"]
    assert measured.top1_images == 100 and measured.speedup > 0 and measured.baseline_top1 is not None
