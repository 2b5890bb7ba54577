"""ONNX Runtime sessions configured from a target: timing runners, per-node profiles attributed to blocks,
top-1 accuracy, and the reference CPU sessions that check exported graphs."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import onnx
import onnxruntime as ort
from google.protobuf.message import DecodeError

from hirelc_agent import ort_measure
from hirelc_agent.ort_measure import MeasureError, NodeTimes, SessionSettings, node_times, time_sessions
from hirelc_agent.timing import Timing

from ..data import Images, Normalize
from ..errors import InputError
from ..models.naming import HEAD, INPUT_NAME, BlockMapper
from ..targets.target import Target


def session_settings(target: Target) -> SessionSettings:
    """How ``target`` runs a model: its execution provider and threads."""
    return SessionSettings(target.execution_provider, target.threads)


def make_session(path: Path, target: Target, provider: str | None = None) -> ort.InferenceSession:
    """An inference session as the target runs it (on ``provider`` instead of the target's, when given)."""
    return ort_measure.make_session(path, SessionSettings(provider or target.execution_provider, target.threads))


@dataclass(frozen=True)
class NodeProfile:
    """Per-owner sums of median node times (ms) and node counts from one profiled session."""

    times_ms: dict[str, float]
    node_counts: dict[str, int]


def attribute_nodes(times: NodeTimes, mapper: BlockMapper) -> NodeProfile:
    """Node times summed per owner (block prefix, STEM or HEAD) of the optimised graph they ran in."""
    owners = mapper.graph_owners(onnx.load_from_string(times.optimized))
    totals: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for node, ms in times.times_ms.items():
        totals[owners.get(node, HEAD)] += ms
        counts[owners.get(node, HEAD)] += 1
    return NodeProfile(dict(totals), dict(counts))


def profile_nodes(path: Path, target: Target, runs: int, warmup: int, mapper: BlockMapper) -> NodeProfile:
    """Sum per owner (block prefix, STEM or HEAD) of each node's median time over ``runs`` profiled inferences."""
    return attribute_nodes(node_times(path, session_settings(target), runs, warmup), mapper)


def open_session(path: Path, target: Target, provider: str | None = None) -> ort.InferenceSession:
    """An ONNX Runtime session for ``path`` as ``make_session`` opens it, with a clear error for a missing or
    corrupt file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: ONNX file not found")
    try:
        onnx.checker.check_model(str(path))
        return make_session(path, target, provider)
    except (onnx.checker.ValidationError, DecodeError, ValueError, RuntimeError,
            ort.capi.onnxruntime_pybind11_state.Fail, ort.capi.onnxruntime_pybind11_state.InvalidProtobuf) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: corrupt or unreadable ONNX model ({first[:200]})") from None


def static_shape(session: ort.InferenceSession, path: Path) -> list[int]:
    """The session's input shape; a dynamic one is refused (latency is measured at one fixed batch)."""
    try:
        return ort_measure.static_input_shape(session, str(path))
    except MeasureError as exc:
        raise InputError(str(exc)) from None


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
    """Latency of each ONNX model on this machine as ``target``, all measured interleaved. The models are graphs
    this toolchain wrote, or files ``open_session`` has checked already: they are not checked again."""
    sessions = {name: make_session(path, target) for name, path in models.items()}
    try:
        return time_sessions(sessions, target.measure, on_burst)
    except MeasureError as exc:
        raise InputError(str(exc)) from None


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
