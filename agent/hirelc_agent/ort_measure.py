"""ONNX Runtime sessions as a target runs them, timed with ``timing``'s protocol, and per-node profiles.

Shared by ``hirelc`` (timing on its own machine) and the agent (timing on the device), so a model is configured,
fed and timed the same way wherever it runs.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import onnxruntime as ort

from .timing import MeasureSettings, Timing, measure_interleaved


class MeasureError(ValueError):
    """A model that cannot be timed as asked (dynamic input, shapes that disagree, unknown provider)."""


@dataclass(frozen=True)
class SessionSettings:
    """How the target runs a model: its execution provider and intra-op threads."""

    execution_provider: str
    threads: int


def session_options(settings: SessionSettings) -> ort.SessionOptions:
    """Session options matching how the target runs models in production."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


def make_session(path: Path, settings: SessionSettings, options: ort.SessionOptions | None = None
                 ) -> ort.InferenceSession:
    """An inference session on the settings' execution provider."""
    return ort.InferenceSession(str(path), options or session_options(settings),
                                providers=[settings.execution_provider])


def static_input_shape(session: ort.InferenceSession, what: str) -> list[int]:
    """The session's input shape; a dynamic one is refused (latency is measured at one fixed batch)."""
    shape = session.get_inputs()[0].shape
    if not all(isinstance(d, int) for d in shape):
        raise MeasureError(f"{what}: input shape {shape} is not static (export with a fixed batch)")
    return list(shape)


def runner(session: ort.InferenceSession, input_shape: Sequence[int], seed: int = 0) -> Callable[[], object]:
    """A zero-argument callable that runs one inference on a fixed random input."""
    feed = {session.get_inputs()[0].name: np.random.default_rng(seed).standard_normal(input_shape,
                                                                                        dtype=np.float32)}
    return lambda: session.run(None, feed)


def time_sessions(sessions: Mapping[str, ort.InferenceSession], measure: MeasureSettings,
                  on_burst: Callable[[], None] | None = None) -> dict[str, Timing]:
    """Every session timed interleaved on a random input of its (static, shared) input shape."""
    shape = None
    runners = {}
    for name, session in sessions.items():
        model_shape = static_input_shape(session, name)
        if shape is not None and model_shape != shape:
            raise MeasureError(f"{name}: input shape {model_shape} differs from {shape}")
        shape = model_shape
        runners[name] = runner(session, model_shape)
    return measure_interleaved(runners, measure, on_burst=on_burst)


@dataclass(frozen=True)
class NodeTimes:
    """Median time (ms) of each node of a session's optimised graph, and that graph (serialised ONNX), which
    says what each node is: the optimiser renames, fuses and inserts nodes, and only its graph knows which."""

    times_ms: dict[str, float]
    optimized: bytes


def node_times(path: Path, settings: SessionSettings, runs: int, warmup: int) -> NodeTimes:
    """Each node's median kernel time over ``runs`` profiled inferences (after ``warmup``) with ONNX Runtime's
    profiler, with the optimised graph they ran in."""
    with tempfile.TemporaryDirectory() as tmp:
        options = session_options(settings)
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(tmp, "profile")
        options.optimized_model_filepath = os.path.join(tmp, "optimized.onnx")
        session = make_session(path, settings, options)
        run = runner(session, static_input_shape(session, str(path)))
        for _ in range(warmup + runs):
            run()
        events = json.loads(Path(session.end_profiling()).read_text())
        optimized = Path(options.optimized_model_filepath).read_bytes()
    per_node: dict[str, list[float]] = defaultdict(list)
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_node[event["name"].removesuffix("_kernel_time")].append(event["dur"] / 1e3)
    return NodeTimes({node: float(np.median(d[-runs:])) for node, d in per_node.items()}, optimized)
