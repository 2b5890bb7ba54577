"""The README's Python API example runs as written, and every call it documents exists."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import hirelc_deploy

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_every_documented_api_call_is_a_function_even_after_every_module_is_imported():
    """A submodule named like an API function would be bound on the package once imported, shadowing it."""
    for module in pkgutil.walk_packages(hirelc_deploy.__path__, "hirelc_deploy."):
        importlib.import_module(module.name)
    called = {name for block in BLOCKS for name in re.findall(r"\bhd\.(\w+)\(", block)}
    assert {"profile", "plan_uniform", "export", "bench", "compress"} <= called
    api = called | {"resume", "validate", "measure_sensitivity", "run_search", "load_target", "parse_budget"}
    assert [name for name in sorted(api) if not inspect.isfunction(getattr(hirelc_deploy, name))] == []


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
