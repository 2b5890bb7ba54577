"""How exported graphs name things, and the one mapping from a graph node (or a runtime's layer) to its block.

The ONNX exporter names every node after the module path that made it (``/layer1/layer1.0/conv1/Conv``); each
block's nodes therefore share its ``onnx_prefix``. Every pass that needs to know which block a node belongs to —
ONNX Runtime's optimised graph and profiler, the Q/DQ and FP16 passes of a TensorRT graph, TensorRT's fused
layer names, the INT8 exclusion list — asks a ``BlockMapper`` built from the model's block prefixes.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

import onnx

INPUT_NAME = "input"  # every exported graph's single input ...
OUTPUT_NAME = "logits"  # ... and single output
STEM = "stem"  # owner of nodes outside every block that run before the first block
HEAD = "head"  # ... and after it


def onnx_scope(module_path: str) -> str:
    """Prefix the TorchScript ONNX exporter gives the nodes of a module: one scope per named module, where a
    container's numbered child is named with its parent (``layer1.0.conv1`` -> ``/layer1/layer1.0/conv1/``)."""
    scopes: list[str] = []
    for part in module_path.split("."):
        scopes.append(f"{scopes[-1]}.{part}" if part.isdigit() and scopes else part)
    return "/" + "/".join(scopes) + "/"


class BlockMapper:
    """Which block (ONNX prefix) a node or layer belongs to, for one model's blocks.

    A block's prefix is its key; a block made of several modules (a pair of a plain stack) has one scope per
    module, joined by ``|`` in its key. Scopes end with ``/``, so one block's scope never starts another's; the
    longest match wins all the same, so nested scopes would resolve to the innermost block.
    """

    def __init__(self, prefixes: Iterable[str]):
        self.prefixes = list(prefixes)
        self._longest_first = sorted(((scope, key) for key in self.prefixes for scope in key.split("|")),
                                     key=lambda pair: len(pair[0]), reverse=True)

    def block_of(self, node_name: str) -> str | None:
        """The prefix of the block a node belongs to, or None for a node outside every block."""
        return next((key for scope, key in self._longest_first if node_name.startswith(scope)), None)

    def mentioned(self, text: str) -> list[str]:
        """Block prefixes named anywhere in ``text``, in the order they first appear.

        A TensorRT layer fused from several nodes is named after all of them (``a + b``), and a reformat layer
        after the layer it feeds, so a layer name can mention several blocks.
        """
        found: dict[str, int] = {}
        for scope, key in self._longest_first:
            at = text.find(scope)
            if at >= 0:
                found[key] = min(at, found.get(key, at))
        return sorted(found, key=found.__getitem__)

    def outside(self, node_names: Iterable[str]) -> list[str]:
        """The names, of those given, of nodes that belong to no block."""
        return [name for name in node_names if self.block_of(name) is None]

    def graph_owners(self, model: onnx.ModelProto) -> dict[str, str]:
        """Every node of an (optimised) graph mapped to its block prefix, or to STEM / HEAD.

        Nodes keep their module-path name through export, quantization and most fusions; a module-path name
        outside every block is STEM before the first block node (graphs are topologically sorted) and HEAD after
        it. Nodes an optimiser or quantizer creates without a module path (layout transposes, reorders, weight
        DequantizeLinear) get the owner of a neighbour: first of a consumer, then of a producer, repeated until
        nothing changes.
        """
        owner: dict[str, str | None] = {}
        outside = STEM
        for node in model.graph.node:
            found = self.block_of(node.name)
            if found:
                outside = HEAD
            owner[node.name] = found or (outside if node.name.startswith("/") else None)
        producers = {out: n.name for n in model.graph.node for out in n.output}
        consumers: dict[str, list[str]] = defaultdict(list)
        for n in model.graph.node:
            for name in n.input:
                consumers[name].append(n.name)
        # One node per name (the last, as ``owner`` has it), so duplicate or empty names resolve one way.
        by_name = {n.name: n for n in model.graph.node}
        changed = True
        while changed:
            changed = False
            for node in by_name.values():
                if owner[node.name] is not None:
                    continue
                neighbours = [c for out in node.output for c in consumers[out]]
                neighbours += [producers[i] for i in node.input if i in producers]
                found = next((owner[n] for n in neighbours if owner.get(n) is not None), None)
                if found is not None:
                    owner[node.name] = found
                    changed = True
        return {name: o or HEAD for name, o in owner.items()}

