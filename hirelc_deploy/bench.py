"""``hirelc bench``: latency of an exported engine on the target (interleaved with a baseline), its top-1
accuracy through ONNX Runtime on a test split, and its size."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import onnx
import onnxruntime as ort
from google.protobuf.message import DecodeError

from .data import ImageSet, Normalize
from .errors import InputError
from .export import INPUT_NAME
from .latency.ort_runner import make_session, runner
from .latency.timing import Timing, measure_interleaved
from .runs import atomic_write_json, read_versioned
from .targets import Target, current_fingerprint

SCHEMA_VERSION = 1


@dataclass
class BenchResult:
    """What was measured for one artifact on one target; every latency here was measured, none predicted."""

    artifact: str
    target: str
    fingerprint: dict
    input_shape: list[int]
    latency_ms: dict
    file_bytes: int
    baseline: str | None = None
    baseline_latency_ms: dict | None = None
    baseline_file_bytes: int | None = None
    speedup: float | None = None
    top1: float | None = None
    top1_images: int | None = None
    baseline_top1: float | None = None
    created: str = ""
    schema_version: int = SCHEMA_VERSION

    def save(self, path: Path) -> Path:
        atomic_write_json(Path(path), asdict(self))
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> "BenchResult":
        """Read a result written by ``save``."""
        try:
            return cls(**read_versioned(path, "benchmark result", SCHEMA_VERSION))
        except TypeError as exc:
            raise InputError(f"{path}: malformed benchmark result ({exc})") from None


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


def _static_shape(session: ort.InferenceSession, path: Path) -> list[int]:
    shape = session.get_inputs()[0].shape
    if not all(isinstance(d, int) for d in shape):
        raise InputError(f"{path}: input shape {shape} is not static (export with a fixed batch)")
    return list(shape)


def top1_accuracy(session: ort.InferenceSession, images: ImageSet, normalize: Normalize,
                  on_batch: Callable[[], None] | None = None) -> float:
    """Top-1 accuracy of an ONNX Runtime session over an image set, padding the last static-size batch."""
    batch, _, h, w = session.get_inputs()[0].shape
    correct = 0
    for x, y in images.batches(batch, normalize, size=(h, w)):
        n = len(y)
        data = x.numpy()
        if n < batch:
            data = np.concatenate([data, np.zeros((batch - n, *data.shape[1:]), dtype=np.float32)])
        logits = session.run(None, {INPUT_NAME: data})[0][:n]
        correct += int((logits.argmax(1) == y.numpy()).sum())
        if on_batch:
            on_batch()
    return correct / len(images)


def measure_latency(models: Mapping[str, Path], target: Target,
                    on_burst: Callable[[], None] | None = None) -> dict[str, Timing]:
    """Latency of each ONNX model on this machine as ``target``, all measured interleaved."""
    shape = None
    runners = {}
    for name, path in models.items():
        session = open_session(path, target)
        model_shape = _static_shape(session, path)
        if shape is not None and model_shape != shape:
            raise InputError(f"{path}: input shape {model_shape} differs from {shape}")
        shape = model_shape
        runners[name] = runner(session, model_shape)
    return measure_interleaved(runners, target.measure, on_burst=on_burst)


def bench(artifact: Path, target: Target, images: ImageSet | None = None, normalize: Normalize | None = None,
          baseline: Path | None = None, on_progress: Callable[[str], None] | None = None) -> BenchResult:
    """Measure ``artifact`` on this machine as ``target``: latency (interleaved with ``baseline`` when given),
    top-1 on ``images`` through the engine itself (and through the baseline), and file sizes."""
    note = on_progress or (lambda *_: None)
    session = open_session(artifact, target)
    shape = _static_shape(session, artifact)
    if shape[0] != target.batch_size:
        raise InputError(f"{artifact}: exported for batch {shape[0]}, target {target.name} runs batch "
                         f"{target.batch_size}")
    runners = {"artifact": runner(session, shape)}
    if baseline is not None:
        base_session = open_session(baseline, target)
        if _static_shape(base_session, baseline) != shape:
            raise InputError(f"--baseline {baseline}: input shape differs from {artifact}")
        runners["baseline"] = runner(base_session, shape)
    timings = measure_interleaved(runners, target.measure, on_burst=lambda: note("timing"))
    result = BenchResult(
        artifact=str(artifact), target=target.name, fingerprint=current_fingerprint(target).to_dict(),
        input_shape=shape, latency_ms=timings["artifact"].to_dict(), file_bytes=Path(artifact).stat().st_size,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )
    if baseline is not None:
        result.baseline = str(baseline)
        result.baseline_latency_ms = timings["baseline"].to_dict()
        result.baseline_file_bytes = Path(baseline).stat().st_size
        result.speedup = timings["baseline"].median_ms / timings["artifact"].median_ms
    if images is not None:
        result.top1 = top1_accuracy(session, images, normalize or Normalize((0, 0, 0), (1, 1, 1)),
                                    on_batch=lambda: note("accuracy"))
        result.top1_images = len(images)
        if baseline is not None:
            result.baseline_top1 = top1_accuracy(base_session, images, normalize or Normalize((0, 0, 0), (1, 1, 1)),
                                                 on_batch=lambda: note("accuracy"))
    return result
