"""ONNX Runtime sessions configured from a target, and per-node profiles attributed to blocks."""

from __future__ import annotations

import json
import os
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import onnx
import onnxruntime as ort

from ..export import INPUT_NAME
from ..targets import Target

STEM = "stem"  # owner of nodes outside every block that run before the first block
HEAD = "head"  # ... and after it


def session_options(target: Target) -> ort.SessionOptions:
    """Session options matching how the target runs models in production."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = target.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


def make_session(path: Path, target: Target, options: ort.SessionOptions | None = None) -> ort.InferenceSession:
    """An inference session on the target's execution provider."""
    return ort.InferenceSession(str(path), options or session_options(target), providers=[target.execution_provider])


def runner(session: ort.InferenceSession, input_shape: Sequence[int], seed: int = 0) -> Callable[[], object]:
    """A zero-argument callable that runs one inference on a fixed random input."""
    feed = {INPUT_NAME: np.random.default_rng(seed).standard_normal(input_shape, dtype=np.float32)}
    return lambda: session.run(None, feed)


def node_owners(model: onnx.ModelProto, prefixes: Sequence[str]) -> dict[str, str]:
    """Map every node of an (optimised) graph to the block prefix it belongs to, or to STEM / HEAD.

    Nodes keep their module-path name (``/layer1/layer1.0/conv1/Conv``) through export, quantization and
    most fusions; a module-path name outside every block is STEM before the first block node (graphs are
    topologically sorted) and HEAD after it. Nodes the optimiser or the quantizer create without a module
    path (layout transposes, reorders, weight DequantizeLinear) get the owner of a neighbour: first of a
    consumer, then of a producer, repeated until nothing changes.
    """
    ordered = sorted(prefixes, key=len, reverse=True)
    owner: dict[str, str | None] = {}
    outside = STEM
    for node in model.graph.node:
        found = next((p for p in ordered if node.name.startswith(p)), None)
        if found:
            outside = HEAD
        owner[node.name] = found or (outside if node.name.startswith("/") else None)
    producers = {out: n.name for n in model.graph.node for out in n.output}
    consumers: dict[str, list[str]] = defaultdict(list)
    for n in model.graph.node:
        for name in n.input:
            consumers[name].append(n.name)
    nodes = {n.name: n for n in model.graph.node}
    changed = True
    while changed:
        changed = False
        for name, node in nodes.items():
            if owner[name] is not None:
                continue
            neighbours = [c for out in node.output for c in consumers[out]]
            neighbours += [producers[i] for i in node.input if i in producers]
            found = next((owner[n] for n in neighbours if owner.get(n) is not None), None)
            if found is not None:
                owner[name] = found
                changed = True
    return {name: o or HEAD for name, o in owner.items()}


@dataclass(frozen=True)
class NodeProfile:
    """Per-owner sums of median node times (ms) and node counts from one profiled session."""

    times_ms: dict[str, float]
    node_counts: dict[str, int]


def profile_nodes(path: Path, target: Target, input_shape: Sequence[int], runs: int, warmup: int,
                  prefixes: Sequence[str]) -> NodeProfile:
    """Sum per owner (block prefix, STEM or HEAD) of each node's median time over ``runs`` profiled inferences."""
    with tempfile.TemporaryDirectory() as tmp:
        options = session_options(target)
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(tmp, "profile")
        options.optimized_model_filepath = os.path.join(tmp, "optimized.onnx")
        session = make_session(path, target, options)
        run = runner(session, input_shape)
        for _ in range(warmup + runs):
            run()
        trace = Path(session.end_profiling())
        events = json.loads(trace.read_text())
        owners = node_owners(onnx.load(options.optimized_model_filepath), prefixes)
    per_node: dict[str, list[float]] = defaultdict(list)
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_node[event["name"].removesuffix("_kernel_time")].append(event["dur"] / 1e3)
    totals: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for node, durations in per_node.items():
        totals[owners.get(node, HEAD)] += float(np.median(durations[-runs:]))
        counts[owners.get(node, HEAD)] += 1
    return NodeProfile(dict(totals), dict(counts))
