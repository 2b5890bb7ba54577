"""ONNX Runtime sessions configured from a target: timing runners, per-node profiles attributed to blocks,
top-1 accuracy, and the reference CPU sessions that check exported graphs."""

from __future__ import annotations

import json
import os
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import onnx
import onnxruntime as ort
from google.protobuf.message import DecodeError

from ..data import Images, Normalize
from ..errors import InputError
from ..latency.timing import Timing, measure_interleaved
from ..models.naming import HEAD, INPUT_NAME, BlockMapper
from ..targets.target import Target


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


@dataclass(frozen=True)
class NodeProfile:
    """Per-owner sums of median node times (ms) and node counts from one profiled session."""

    times_ms: dict[str, float]
    node_counts: dict[str, int]


def profile_nodes(path: Path, target: Target, input_shape: Sequence[int], runs: int, warmup: int,
                  mapper: BlockMapper) -> NodeProfile:
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
        owners = mapper.graph_owners(onnx.load(options.optimized_model_filepath))
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


def open_session(path: Path, target: Target) -> ort.InferenceSession:
    """An ONNX Runtime session for ``path``, with a clear error for a missing or corrupt file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: ONNX file not found")
    try:
        onnx.checker.check_model(str(path))
        return make_session(path, target)
    except (onnx.checker.ValidationError, DecodeError, ValueError, RuntimeError,
            ort.capi.onnxruntime_pybind11_state.Fail, ort.capi.onnxruntime_pybind11_state.InvalidProtobuf) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: corrupt or unreadable ONNX model ({first[:200]})") from None


def static_shape(session: ort.InferenceSession, path: Path) -> list[int]:
    """The session's input shape; a dynamic one is refused (latency is measured at one fixed batch)."""
    shape = session.get_inputs()[0].shape
    if not all(isinstance(d, int) for d in shape):
        raise InputError(f"{path}: input shape {shape} is not static (export with a fixed batch)")
    return list(shape)


def top1_accuracy(session: ort.InferenceSession, images: Images, normalize: Normalize,
                  on_batch: Callable[[], None] | None = None) -> tuple[float, int]:
    """Top-1 accuracy of an ONNX Runtime session over an image set, padding the last static-size batch, and
    the number of images scored (bad images skipped under --skip-bad-images are not)."""
    batch, _, h, w = session.get_inputs()[0].shape
    correct = seen = 0
    for x, y in images.batches(batch, normalize, size=(h, w)):
        n = len(y)
        seen += n
        data = x.numpy()
        if n < batch:
            data = np.concatenate([data, np.zeros((batch - n, *data.shape[1:]), dtype=np.float32)])
        logits = session.run(None, {INPUT_NAME: data})[0][:n]
        correct += int((logits.argmax(1) == y.numpy()).sum())
        if on_batch:
            on_batch()
    return correct / max(seen, 1), seen


def measure_latency(models: Mapping[str, Path], target: Target,
                    on_burst: Callable[[], None] | None = None) -> dict[str, Timing]:
    """Latency of each ONNX model on this machine as ``target``, all measured interleaved."""
    shape = None
    runners = {}
    for name, path in models.items():
        session = open_session(path, target)
        model_shape = static_shape(session, path)
        if shape is not None and model_shape != shape:
            raise InputError(f"{path}: input shape {model_shape} differs from {shape}")
        shape = model_shape
        runners[name] = runner(session, model_shape)
    return measure_interleaved(runners, target.measure, on_burst=on_burst)


def reference_session(path: Path, basic_only: bool = False) -> ort.InferenceSession:
    """ONNX Runtime on CPU running an exported graph to check it against PyTorch (not to time it).

    ``basic_only`` for TensorRT-bound graphs: ONNX Runtime 1.32's extended CPU fusions mis-handle FLOAT8 Q/DQ (an
    all-FP8 ResNet-20 agreed with PyTorch on 6% of images with them, 98% without); TensorRT fuses on its own.
    """
    options = ort.SessionOptions()
    if basic_only:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def reference_outputs(path: Path, batches: Sequence[np.ndarray], basic_only: bool = False) -> np.ndarray:
    """Outputs of ``reference_session`` over the check batches, concatenated."""
    session = reference_session(path, basic_only)
    return np.concatenate([session.run(None, {INPUT_NAME: b})[0] for b in batches])
