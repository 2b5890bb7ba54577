"""Automatic block discovery: the units the search compresses, found in any traceable PyTorch CNN
(``shrink.py`` applies a width configuration to them).

The model is traced twice: by ``torch.fx`` (which module each operation belongs to, where the residual adds
are) and by torch-pruning's dependency graph (which channels are coupled: a convolution's output channels, the
BatchNorm after it, a depthwise convolution, a squeeze-excitation gate, the next convolution's input). Each
coupled set of channels is a *channel group*. A unit keeps its input and output width whatever happens inside
it, so units can be shrunk independently and the latency table stays one entry per (width, precision):

- **module units**: a module whose channel groups all stay inside it (basic, bottleneck, inverted residual with
  or without squeeze-excitation, grouped convolutions). All its groups shrink by the same fraction; the first
  group's width is the unit's inner width. It is *removable* when its output is (an activation of) a residual
  add whose shortcut does not depend on the branch: removing it leaves the shortcut alone;
- **pair units**: a plain conv-BN-ReLU stack (VGG) in one container holds a chain of groups, where pruning one
  layer's output changes the next layer's input. It is split into pairs of convolutions: the pair's inner
  channels shrink, its output channels stay, so each pair's cost depends on its own width only (the table is
  exact, not an interaction model; half the stack's channel sets are prunable);
- **precision units**: a module beside other units that holds two or more convolutions but no group of its own
  (MobileNetV2's first block: its channels are the previous layer's). Its precision can change, not its width.

Everything else is left alone, with the reason recorded: channels tied to a concatenation, to a reshape or the
classifier's input, to a residual stream, or to the input of a block.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.fx as fx
import torch.nn.functional as F
import torch_pruning as tp
from torch import nn

from .naming import onnx_scope
from .tracing import (ROOT, UntraceableModel, branch_convs, common_module, is_add, module_stack, nonnegative,
                      parent_module, residual_join, trace, within)


@dataclass(frozen=True)
class ChannelGroup:
    """Channels coupled across layers: the output channels of ``root`` and everything indexed by them."""

    root: str  # module path of the convolution whose output channels these are
    width: int
    step: int = 1  # channels removed together (a grouped convolution keeps whole groups)


@dataclass(frozen=True)
class BlockInfo:
    """One unit of a model: what the search may change in it, and which modules it is made of."""

    index: int
    name: str  # module path ("layer1.0"), or "first-last" of a pair of a plain stack
    kind: str  # basic, bottleneck, inverted_residual, grouped, chain (+se)
    in_channels: int
    out_channels: int
    full_width: int  # inner channels of the uncompressed model (the first channel group's width)
    prunable: bool
    removable: bool = False
    input_nonnegative: bool = False  # its input is a ReLU output: once removed, an identity shortcut needs none
    modules: tuple[str, ...] = ()  # module paths whose operations belong to the unit
    groups: tuple[ChannelGroup, ...] = ()
    step: int = 1  # inner widths are multiples of this (grouped convolutions)
    notes: tuple[str, ...] = ()  # why it is not prunable / not removable

    @property
    def onnx_prefix(self) -> str:
        """The unit's key in exported graphs: its modules' ONNX scopes joined by ``|`` (see ``BlockMapper``)."""
        return "|".join(onnx_scope(m) for m in (self.modules or (self.name,)))

    def group_widths(self, width: int) -> list[int]:
        """Width of each channel group when the unit's inner width is ``width`` (the same fraction for all)."""
        return [max(g.step, g.step * round(width * g.width / (self.full_width * g.step))) for g in self.groups]


@dataclass(frozen=True)
class LeftAlone:
    """Layers discovery does not compress, and why."""

    layers: tuple[str, ...]
    reason: str


@dataclass
class Discovery:
    """What ``discover`` found: the units in execution order and what it left alone."""

    units: list[BlockInfo]
    left_alone: list[LeftAlone] = field(default_factory=list)


# --------------------------------------------------------------------------------------- channel groups


@dataclass
class _Group:
    root: str
    width: int
    members: dict[str, str]  # module path -> "out" / "in"
    ops: set[str]  # kinds of functional operations the channels pass through
    lca: str = ROOT
    step: int = 1

    @property
    def consumers(self) -> list[str]:
        return [m for m, side in self.members.items() if side == "in"]


@dataclass
class _Draft:
    """A block before its description: its name, modules and channel groups."""

    name: str
    modules: tuple[str, ...]
    groups: list[_Group]
    pair: bool = False
    notes: tuple[str, ...] = ()


def is_grouped(layer: object) -> bool:
    return isinstance(layer, nn.Conv2d) and 1 < layer.groups and layer.groups != layer.in_channels


def _op_kind(graph: tp.DependencyGraph, module: object) -> str | None:
    if isinstance(module, tp.ops._ConcatOp):
        return "concat"
    if isinstance(module, (tp.ops._ReshapeOp, tp.ops._SplitOp, tp.ops._UnbindOp, tp.ops._ExpandOp, tp.ops._SliceOp)):
        return "reshape"
    # An add of two traced tensors couples channels (a residual stream); a constant added (x + 3 in a
    # hard-swish) is one input and couples nothing.
    if isinstance(module, tp.ops._ElementWiseOp) and str(module._grad_fn).startswith("AddBackward"):
        return "add" if len(graph.module2node[module].inputs) >= 2 else None
    return None


def _channel_groups(model: nn.Module, graph: tp.DependencyGraph, convs: list[str]) -> list[_Group]:
    names = {m: n for n, m in model.named_modules()}
    groups, covered = [], set()
    for path in convs:
        conv = model.get_submodule(path)
        if path in covered:
            continue
        group = graph.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=list(range(conv.out_channels)))
        members: dict[str, str] = {}
        ops: set[str] = set()
        for dep, _ in group:
            target = dep.target.module
            kind = _op_kind(graph, target)
            if kind:
                ops.add(kind)
            if not isinstance(target, nn.Module) or target not in names:
                continue
            name = names[target]
            out = graph.is_out_channel_pruning_fn(dep.handler)
            if isinstance(target, nn.Linear) and not out:
                ops.add("linear_in")
            members.setdefault(name, "out" if out else "in")
            if out and isinstance(target, nn.Conv2d):
                covered.add(name)
        # A grouped convolution's channels go in whole groups: its input channels per group on its input side,
        # its output channels per group on its output side.
        layers = {name: model.get_submodule(name) for name in members}
        step = max([1] + [(layer.out_channels if name == path else layer.in_channels) // layer.groups
                          for name, layer in layers.items() if is_grouped(layer)])
        groups.append(_Group(path, conv.out_channels, members, ops, common_module(list(members)), step))
    return groups


def _left_reason(group: _Group) -> str | None:
    """Why a group's channels cannot be narrowed inside one unit (None: they can)."""
    if "concat" in group.ops:
        return "its channels are tied to a concatenation"
    if "add" in group.ops:
        return "its channels are a residual stream (added to a shortcut)"
    if "linear_in" in group.ops or "reshape" in group.ops:
        return "its channels feed a reshape or the classifier's input"
    return None


# ------------------------------------------------------------------------------------------- discovery


def _kind(model: nn.Module, convs: Sequence[str], residual: bool, gated: bool) -> str:
    layers = [model.get_submodule(c) for c in convs]
    if any(layer.groups == layer.in_channels > 1 for layer in layers):
        kind = "inverted_residual"
    elif any(1 < layer.groups < layer.in_channels for layer in layers):
        kind = "grouped"
    elif not residual:
        kind = "chain"
    else:
        kind = "basic" if len(convs) <= 2 else "bottleneck"
    return kind + ("+se" if gated else "")


class _Graph:
    """The fx view of a model: execution order of modules and which module each operation belongs to."""

    def __init__(self, model: nn.Module, label: str):
        self.gm = trace(model, label)
        self.nodes = list(self.gm.graph.nodes)
        # A module called more than once (one ReLU for every layer) belongs to no one block.
        self.shared = {path.split("@")[0] for n in self.nodes for path in n.meta.get("nn_module_stack", {})
                       if "@" in path}
        self.order: dict[str, int] = {}
        self.last: dict[str, int] = {}
        for i, node in enumerate(self.nodes):
            for path in module_stack(node) + ([str(node.target)] if node.op == "call_module" else []):
                self.order.setdefault(path, i)
                self.last[path] = i
        self.convs = [str(n.target) for n in self.nodes
                      if n.op == "call_module" and isinstance(self.gm.get_submodule(n.target), nn.Conv2d)]

    def children(self, container: str) -> list[str]:
        """Direct children of a module that run, in execution order."""
        depth = 0 if container == ROOT else container.count(".") + 1
        found = {p for p in self.order if within(p, container) and p != container and p.count(".") == depth
                 and p not in self.shared}
        return sorted(found, key=self.order.__getitem__)

    def spans(self, members: Sequence[str], module: str) -> bool:
        """Whether some of ``members`` run before ``module`` starts and some after it ends."""
        return (any(self.order[m] < self.order[module] for m in members)
                and any(self.order[m] > self.last[module] for m in members))

    def pools(self, module: str) -> bool:
        """Whether ``module`` pools globally inside (the squeeze of a squeeze-excitation gate)."""
        return any((node.op == "call_module" and isinstance(self.gm.get_submodule(node.target), nn.AdaptiveAvgPool2d))
                   or (node.op == "call_function" and node.target is F.adaptive_avg_pool2d)
                   or (node.op == "call_method" and node.target == "mean") for node in self.inside(module))

    def inside(self, module: str) -> set[fx.Node]:
        """The nodes that run inside ``module``."""
        return {n for n in self.nodes if any(within(p, module) for p in module_stack(n))
                or (n.op == "call_module" and within(str(n.target), module))}

    def residual(self, module: str) -> bool:
        """Whether an add runs directly in ``module``'s own forward (a residual unit's join)."""
        return module != ROOT and any(is_add(n) and module_stack(n)[-1:] == [module] for n in self.nodes)

    def input_nonnegative(self, module: str) -> bool:
        """Whether the tensor entering ``module`` is provably >= 0."""
        inside = self.inside(module)
        inputs = {a for n in inside for a in n.all_input_nodes if a not in inside}
        return len(inputs) == 1 and nonnegative(self.gm, next(iter(inputs)), False)


def _convs_in(graph: _Graph, modules: Sequence[str]) -> list[str]:
    return [c for c in graph.convs if any(within(c, m) for m in modules)]


def _passive(module: nn.Module) -> bool:
    """A module a pair may end with: a norm, or one without parameters (activation, pool, dropout)."""
    return isinstance(module, nn.modules.batchnorm._BatchNorm) or not any(True for _ in module.parameters())


def _pair_name(first: str, last: str) -> str:
    a, b = first.rsplit(".", 1), last.rsplit(".", 1)
    if len(a) == 2 and len(b) == 2 and a[0] == b[0]:
        return f"{first}-{b[1]}"
    return f"{first}-{last}"


def _lift(graph: _Graph, module: str) -> str:
    """The module a group's unit is: its lowest common module, lifted through wrappers (a ``conv`` Sequential
    inside a block) up to the module holding the residual add, never to one holding other convolutions than
    its shortcut's."""
    while module != ROOT and not graph.residual(module):
        parent = parent_module(module)
        if parent == ROOT:
            break
        # The parent's add joins this branch to a shortcut (which may hold a projection convolution).
        if not graph.residual(parent) and set(_convs_in(graph, [parent])) - set(_convs_in(graph, [module])):
            break
        module = parent
    return module


def discover(model: nn.Module, input_shape: Sequence[int], label: str = "model") -> Discovery:
    """The units of ``model`` (C, H, W input) in execution order, and what was left alone and why."""
    model = copy.deepcopy(model).eval()
    graph = _Graph(model, label)
    try:
        deps = tp.DependencyGraph().build_dependency(model, example_inputs=torch.zeros(1, *input_shape))
    except Exception as exc:  # torch-pruning raises whatever its tracer meets
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UntraceableModel(f"{label}: torch-pruning cannot build its dependency graph ({first})") from None
    left: dict[str, str] = {}
    candidates = []
    for g in _channel_groups(model, deps, graph.convs):
        reason = _left_reason(g)
        if reason:
            left[g.root] = reason
        else:
            candidates.append(g)
    lcas = {g.lca for g in candidates if g.lca != ROOT}
    # A group that runs on both sides of a module holding groups of its own, and whose channels are also
    # produced inside it (a squeeze-excitation gate between a depthwise and a projection convolution), makes
    # that module part of its block.
    parts = {inner: g.lca for g in candidates for inner in lcas
             if inner != g.lca and within(inner, g.lca) and graph.spans(g.members, inner)
             and any(side == "out" and within(m, inner) for m, side in g.members.items())}
    # A residual block holding groups of modules that are not residual blocks themselves (a squeeze-excitation
    # gate on the residual branch) is one block with them.
    for outer in lcas:
        nested = [inner for inner in lcas if inner != outer and within(inner, outer)]
        if graph.residual(outer) and nested and not any(graph.residual(inner) for inner in nested):
            parts.update(dict.fromkeys(nested, outer))
    for g in candidates:
        while g.lca in parts:
            g.lca = parts[g.lca]
    lcas = {g.lca for g in candidates if g.lca != ROOT}
    # A module holding another group's module is a container of units: its own groups run between units.
    containers = {m for m in lcas if any(o != m and within(o, m) for o in lcas)}
    by_module: dict[str, list[_Group]] = defaultdict(list)
    between: list[_Group] = []
    for g in candidates:
        if g.lca == ROOT or g.lca in containers:
            between.append(g)
        else:
            by_module[_lift(graph, g.lca)].append(g)

    drafts: list[_Draft] = []
    for module, found in by_module.items():
        found.sort(key=lambda g: graph.order[g.root])
        if graph.residual(module) or len(found) <= 2:
            drafts.append(_Draft(module, (module,), found))
        else:
            drafts += _pairs(graph, module, found, left)
    unit_modules = {d.name for d in drafts if not d.pair}
    covered = {c for d in drafts for c in _convs_in(graph, d.modules)}
    for container in {parent_module(m) for m in unit_modules}:
        for child in graph.children(container):
            convs = _convs_in(graph, [child])
            if child not in unit_modules and len(convs) >= 2 and not set(convs) & covered:
                drafts.append(_Draft(child, (child,), [], notes=("its inner channels are tied to its input",)))
                unit_modules.add(child)
                covered |= set(convs)
    chains: dict[str, list[_Group]] = defaultdict(list)
    for g in between:
        touched = sorted({u for u in unit_modules for m in g.members if within(m, u)})
        if touched:
            left[g.root] = f"its channels are the input or output of block {touched[0]}"
        else:
            chains[g.lca].append(g)
    for container, found in chains.items():
        found.sort(key=lambda g: graph.order[g.root])
        drafts += _pairs(graph, container, found, left)

    drafts.sort(key=lambda d: graph.order[d.modules[0]])
    units = [_unit(model, graph, i, d) for i, d in enumerate(drafts)]
    in_units = {c for u in units for c in _convs_in(graph, u.modules)}
    alone = [LeftAlone((c,), left.get(c, "a single layer between units (stem or transition): kept FP32"))
             for c in graph.convs if c not in in_units]
    alone += [LeftAlone((n,), "a linear layer outside every block (the classifier)")
              for n, m in model.named_modules() if isinstance(m, nn.Linear)
              and not any(within(n, mod) for u in units for mod in u.modules)]
    return Discovery(units, alone)


def _pairs(graph: _Graph, container: str, chain: list[_Group], left: dict[str, str]) -> list[_Draft]:
    """Split a plain stack's chain of groups into pairs of convolutions (see the module docstring)."""
    children = graph.children(container)

    def child_of(path: str) -> int:
        return next(i for i, c in enumerate(children) if within(path, c))

    spans, taken_until = [], -1  # (first child, last child, group) of each pair
    for g in chain:
        start = child_of(g.root)
        if start <= taken_until or not g.consumers:
            left.setdefault(g.root, "keeps a pair's output width fixed, so the next pair's input does not change")
            continue
        taken_until = max(child_of(c) for c in g.consumers)
        spans.append((start, taken_until, g))
    drafts = []
    for k, (start, end, group) in enumerate(spans):
        stop = spans[k + 1][0] if k + 1 < len(spans) else len(children)
        # Through the pair's own norms, activations and pools; never into a classifier or any other layer.
        while end + 1 < stop and _passive(graph.gm.get_submodule(children[end + 1])):
            end += 1
        modules = tuple(children[start: end + 1])
        drafts.append(_Draft(_pair_name(modules[0], modules[-1]), modules, [group], pair=True))
    return drafts


def _unit(model: nn.Module, graph: _Graph, index: int, draft: _Draft) -> BlockInfo:
    modules, found = draft.modules, draft.groups
    convs = _convs_in(graph, modules)
    first, last = model.get_submodule(convs[0]), model.get_submodule(convs[-1])
    notes = list(draft.notes)
    groups = tuple(ChannelGroup(g.root, g.width, g.step) for g in found)
    removable = False
    if draft.pair:
        kind = "chain"
        notes.append("a plain stack: no shortcut to stand in for it")
    else:
        kind = _kind(model, [c for c in convs if any(c in g.members for g in found)] or convs,
                     graph.residual(draft.name), graph.pools(draft.name))
        module = model.get_submodule(draft.name)
        try:
            result = residual_join(trace(module, draft.name), branch_convs(module, draft.name, groups))
        except UntraceableModel as exc:
            result = str(exc)
        removable = not isinstance(result, str)
        if isinstance(result, str):
            notes.append(result)
    prunable = bool(groups)
    for conv in (c for c in convs if is_grouped(model.get_submodule(c))):
        # Whole groups can only go where both sides of the grouped convolution are this block's own channels.
        if found and not (any(g.root == conv for g in found) and any(g.members.get(conv) == "in" for g in found)):
            prunable = False
            notes.append(f"grouped convolution {conv} takes or gives channels that are not the block's own")
    full = groups[0].width if groups else first.out_channels
    step = groups[0].step if groups else 1
    nonnegative = removable and graph.input_nonnegative(draft.name)
    return BlockInfo(index, draft.name, kind, first.in_channels, last.out_channels, full, prunable,
                     removable, nonnegative, tuple(modules), groups, step, tuple(notes))
