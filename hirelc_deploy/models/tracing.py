"""The torch.fx side of block discovery: tracing with a one-line error naming the module that cannot be traced,
which module each operation runs in, ReLU signs, and the residual add that ends a block."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from ..errors import InputError

ROOT = ""


class UntraceableModel(InputError):
    """The model cannot be traced into a graph (data-dependent control flow, an unsupported construct)."""


# ---------------------------------------------------------------------------------------------- tracing


class _Tracer(fx.Tracer):
    """fx tracer that remembers which module it was inside when tracing failed."""

    def __init__(self):
        super().__init__()
        self.failed_in: str | None = None

    def call_module(self, m, forward, args, kwargs):
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.failed_in is None:  # the innermost module: outer calls see the exception after it
                self.failed_in = self.path_of_module(m)
            raise


def trace(model: nn.Module, label: str = "model") -> fx.GraphModule:
    """``model`` as an fx graph, or an UntraceableModel error naming the module and the construct."""
    tracer = _Tracer()
    try:
        graph = tracer.trace(model)
    except Exception as exc:  # fx raises TraceError, TypeError, NotImplementedError, ... for untraceable code
        where = f"module '{tracer.failed_in}'" if tracer.failed_in else f"{type(model).__name__}.forward"
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UntraceableModel(f"{label}: cannot be traced in {where} "
                               f"({type(exc).__name__}: {detail}); block discovery needs a forward without "
                               "data-dependent control flow") from None
    return fx.GraphModule(tracer.root, graph)


def module_stack(node: fx.Node) -> list[str]:
    """Module paths the node runs inside, outermost first (fx names a module's later calls ``path@N``)."""
    return list(dict.fromkeys(path.split("@")[0] for path in node.meta.get("nn_module_stack", {})))


def within(path: str, module: str) -> bool:
    """Whether the module at ``path`` is ``module`` or inside it (everything is inside the root)."""
    return module == ROOT or path == module or path.startswith(module + ".")


def common_module(paths: Sequence[str]) -> str:
    """The deepest module containing every path."""
    parts = [p.split(".") for p in paths]
    common: list[str] = []
    for level in zip(*parts):
        if len(set(level)) != 1:
            break
        common.append(level[0])
    return ".".join(common)


def parent_module(path: str) -> str:
    """The path of the module holding ``path`` (the root for a top-level module)."""
    return path.rsplit(".", 1)[0] if "." in path else ROOT


# ------------------------------------------------------------------------------- activations and signs

_RELU_MODULES = (nn.ReLU, nn.ReLU6)
_RELU_FUNCTIONS = {F.relu, torch.relu, F.relu6, torch.relu_}
_PASS_SIGN_MODULES = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Identity, nn.Dropout, nn.Flatten)
_PASS_SIGN_FUNCTIONS = {operator.getitem, F.pad, torch.flatten, F.max_pool2d, F.avg_pool2d,
                        F.adaptive_avg_pool2d, F.dropout}
_ADDS = {operator.add, operator.iadd, torch.add}


def _is_relu(gm: fx.GraphModule, node: fx.Node) -> bool:
    if node.op == "call_module":
        return isinstance(gm.get_submodule(node.target), _RELU_MODULES)
    if node.op == "call_function":
        return node.target in _RELU_FUNCTIONS
    return node.op == "call_method" and node.target in ("relu", "relu_")


def is_add(node: fx.Node) -> bool:
    """Whether ``node`` adds (``+``, ``+=``, ``torch.add``, ``Tensor.add``)."""
    return ((node.op == "call_function" and node.target in _ADDS)
            or (node.op == "call_method" and node.target in ("add", "add_")))


def nonnegative(gm: fx.GraphModule, node: object, input_nonnegative: bool) -> bool:
    """Whether a node's values are provably >= 0 (a ReLU output, or parameter-free data movement of one)."""
    if not isinstance(node, fx.Node):
        return False
    if node.op == "placeholder":
        return input_nonnegative
    if _is_relu(gm, node):
        return True
    tensors = [a for a in node.args if isinstance(a, fx.Node)]
    if is_add(node):  # the sum of two non-negative tensors; a constant or a scaled operand may not be
        passes = len(tensors) == len(node.args) and not node.kwargs
    elif node.target is F.pad:  # zero padding only
        passes = len(node.args) < 4 and node.kwargs.get("value") in (None, 0, 0.0)
    else:
        passes = ((node.op == "call_module" and isinstance(gm.get_submodule(node.target), _PASS_SIGN_MODULES))
                  or (node.op == "call_function" and node.target in _PASS_SIGN_FUNCTIONS))
    return passes and bool(tensors) and all(nonnegative(gm, a, input_nonnegative) for a in tensors)


def _ancestors(node: fx.Node) -> set[fx.Node]:
    seen: set[fx.Node] = set()
    todo = [node]
    while todo:
        n = todo.pop()
        for a in n.all_input_nodes:
            if a not in seen:
                seen.add(a)
                todo.append(a)
    return seen


# --------------------------------------------------------------------------------------- residual units


@dataclass(frozen=True)
class _Residual:
    add: fx.Node
    shortcut: fx.Node
    activations: tuple[fx.Node, ...]


def residual_join(gm: fx.GraphModule, branch_roots: set[str]) -> _Residual | str:
    """The residual add ending a module's graph, or why there is none that removal could use."""
    out = next(n for n in gm.graph.nodes if n.op == "output").args[0]
    if not isinstance(out, fx.Node):
        return "its output is not a single tensor"
    acts, node = [], out
    while _is_relu(gm, node):
        acts.append(node)
        node = node.args[0]
    if not is_add(node) or len(node.args) < 2 or not all(isinstance(a, fx.Node) for a in node.args[:2]):
        return "no residual add ends it (no shortcut to stand in for it)"
    a, b = node.args[:2]

    def convs(n: fx.Node) -> set[str]:
        return {str(x.target) for x in _ancestors(n) | {n} if x.op == "call_module" and str(x.target) in branch_roots}

    inputs = {n for n in gm.graph.nodes if n.op == "placeholder"}
    for branch, shortcut in ((a, b), (b, a)):
        from_input = shortcut in inputs or bool(inputs & _ancestors(shortcut))
        if convs(branch) and not convs(shortcut) and branch not in _ancestors(shortcut) and from_input:
            return _Residual(node, shortcut, tuple(acts))
    return "no shortcut from its input that stands apart from its branch"


def branch_convs(module: nn.Module, name: str, groups: Sequence) -> set[str]:
    """The convolutions (paths inside ``module``) that only the residual branch may hold: the roots of the
    block's channel groups, or every convolution of a block without groups."""
    if groups:
        return {g.root.removeprefix(name + ".") for g in groups}
    return {path for path, layer in module.named_modules() if isinstance(layer, nn.Conv2d)}


