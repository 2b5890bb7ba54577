"""The README's Python API example and its "your own model" quickstart run as written (the quickstart on a tiny
dataset and the tests' quick target), and every call it documents exists."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import shlex
from pathlib import Path

import pytest

import hirelc_deploy

from .conftest import hirelc, noise_tolerant

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
API_EXAMPLE = next(block for block in BLOCKS if "import hirelc_deploy as hd" in block)


def test_every_documented_api_call_is_a_function_even_after_every_module_is_imported():
    """A submodule named like an API function would be bound on the package once imported, shadowing it."""
    for module in pkgutil.walk_packages(hirelc_deploy.__path__, "hirelc_deploy."):
        importlib.import_module(module.name)
    called = {name for block in BLOCKS for name in re.findall(r"\bhd\.(\w+)\(", block)}
    assert {"profile", "plan_uniform", "export", "bench", "compress"} <= called
    api = called | {"resume", "validate", "measure_sensitivity", "run_search", "load_target", "parse_budget",
                    "resolve_model", "get_model_spec"}
    assert [name for name in sorted(api) if not inspect.isfunction(getattr(hirelc_deploy, name))] == []


@pytest.mark.slow
@pytest.mark.shared
def test_the_python_api_example_runs(shared, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HIRELC_SHARED", str(shared))
    namespace: dict = {}
    # The shipped target, without its refusal of a noisy profile (this machine's noise is not under test).
    example = API_EXAMPLE.replace('"cpu-ort-1t"', repr(str(noise_tolerant("cpu-ort-1t", tmp_path))))
    exec(compile(example, str(README), "exec"), namespace)  # noqa: S102 - the README's own code
    assert namespace["profiled"].table_path.is_file() and namespace["profiled"].table.kind == "measured"
    assert (tmp_path / "r20-int8" / "manifest.json").is_file()
    measured = namespace["measured"]
    assert measured.top1_images == 100 and measured.speedup > 0 and measured.baseline_top1 is not None


def _own_model_section() -> str:
    text = README.read_text(encoding="utf-8")
    return text[text.index("## Your own model"):text.index("## Python API")]


@pytest.mark.slow
def test_the_your_own_model_quickstart_runs(tmp_path, monkeypatch, capsys, tiny_target, tiny_cifar):
    """Every command of the quickstart, in order, with its model file; three substitutions keep it fast: a tiny
    ImageFolder for CIFAR-10, the tests' tiny target for cpu-ort-1t (so 2 validation networks, not 8), and a short
    search and fine-tune (compress's defaults spend minutes). Engines are timed in this process."""
    section = _own_model_section()
    model_file = re.search(r"```python\n(# my_nets.py.*?)```", section, re.S).group(1)
    commands = re.search(r"```bash\n(.*?)```", section, re.S).group(1).replace("\\\n", " ").splitlines()
    (tmp_path / "my_nets.py").write_text(model_file)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("HIRELC_TABLES", str(tmp_path / "tables"))
    monkeypatch.setattr("hirelc_deploy.targets.backends.onnxruntime.run_isolated", lambda fn, *a, **k: fn(*a, **k))
    quick = ["--evals", "3", "--strategy", "fisher-greedy", "--finetune-images", "32", "--heldout-images", "40",
             "--test-per-class", "2", "--finalists", "1", "--latency-budget", "0.95x"]
    ran = []
    for line in commands:
        argv = shlex.split(line.split("  #")[0])
        if argv[0] == "python":
            exec(argv[2], {})  # noqa: S102 - the README's own one-liner (saves the weights)
            continue
        argv = [{"../shared/datasets/cifar10": str(tiny_cifar), "cpu-ort-1t": tiny_target.path, "8": "2"}.get(a, a)
                for a in argv[1:]]
        if argv[0] == "compress":
            argv += quick
        code, out, err = hirelc(monkeypatch, capsys, *argv)
        assert code == 0, f"{line}: {err}"
        ran.append(argv[0])
    assert ran == ["inspect", "profile", "compress"]
    assert (tmp_path / "w.pt").is_file() and list((tmp_path / "runs").glob("*compress*/report.html"))
