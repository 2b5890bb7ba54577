"""The package's import graph: one way, no cycles, and backend knowledge only behind the backend seam."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import hirelc_deploy

PACKAGE = Path(hirelc_deploy.__file__).parent
BACKENDS = "hirelc_deploy.targets.backends"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(path: Path, module: str) -> set[str]:
    """Modules of the package that ``path`` imports when it runs, anywhere in the file (functions included);
    imports under ``if TYPE_CHECKING:`` are for annotations only and never run."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
                   for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("hirelc_deploy")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("hirelc_deploy"):
                continue
            # ``from . import x`` may name a submodule; count it when it is one.
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in MODULES else target)
    return found & MODULES.keys()


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: _runtime_imports(path, name) - {name} for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return out


def test_the_import_graph_has_no_cycle():
    assert len(GRAPH) > 60
    assert _cycles(GRAPH) == []


def test_the_walk_sees_cycles_and_relative_imports():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert "hirelc_deploy.latency.table" in GRAPH["hirelc_deploy.latency.profile"]
    assert "hirelc_deploy.runtime.tensorrt" in GRAPH["hirelc_deploy.targets.backends.tensorrt"]


def test_latency_and_artifacts_never_import_each_other():
    for module, imports in GRAPH.items():
        for first, second in (("latency", "artifacts"), ("artifacts", "latency")):
            if module.startswith(f"hirelc_deploy.{first}"):
                assert not [i for i in imports if i.startswith(f"hirelc_deploy.{second}")], module


def test_only_the_backends_know_which_runtime_a_target_has():
    branch = re.compile(r"backend\s*(==|!=)")
    for module, path in MODULES.items():
        if not module.startswith(BACKENDS):
            assert not branch.search(path.read_text(encoding="utf-8")), module


def test_tensorrt_is_imported_only_by_the_runtime_wrapper():
    importers = [m for m, p in MODULES.items() if re.search(r"^\s*import tensorrt\b", p.read_text(), re.M)]
    assert importers and all(m.startswith("hirelc_deploy.runtime.tensorrt") for m in importers), importers
