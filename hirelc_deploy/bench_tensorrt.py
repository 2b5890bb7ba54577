"""Benchmark a TensorRT artifact: engine latency with CUDA events where the engine exists, top-1 of the graph.

Top-1 is measured on the test split through the TensorRT-bound ONNX graph run by ONNX Runtime on CPU (the same
Q/DQ and FP16 arithmetic TensorRT is given; the engine's own kernels may round differently), and says so.
Latency is measured only on a GPU with TensorRT; elsewhere the record says it was not measured, and why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .bench import top1_accuracy
from .data import ImageSet, Normalize
from .export import load_manifest
from .export.artifact import BASELINE_NAME, MODEL_NAME
from .export.trt_artifact import BASELINE_ENGINE_NAME, ENGINE_NAME, cpu_session
from .errors import InputError
from .targets import Target, current_fingerprint

TOP1_THROUGH = "the TensorRT-bound ONNX graph run by ONNX Runtime on CPU (not the engine)"


def bench_tensorrt(artifacts: Path, target: Target, images: ImageSet, normalize: Normalize) -> dict:
    """Top-1 of the compressed and uncompressed graphs, file sizes, and (engine built) latency of both
    engines timed interleaved: ``measured_ms`` / ``uncompressed_ms`` medians with their quartiles, or None."""
    artifacts = Path(artifacts)
    engine = load_manifest(artifacts).engine
    result = {
        "top1_after": top1_accuracy(cpu_session(artifacts / MODEL_NAME), images, normalize),
        "top1_before": top1_accuracy(cpu_session(artifacts / BASELINE_NAME), images, normalize),
        "test_images": len(images), "top1_through": TOP1_THROUGH,
        "bytes_after": (artifacts / MODEL_NAME).stat().st_size,
        "bytes_before": (artifacts / BASELINE_NAME).stat().st_size,
        "engine": engine, "measured_ms": None, "uncompressed_ms": None,
    }
    if not engine.get("built"):
        result["not_measured"] = engine.get("reason", "no engine was built")
        return result
    from .latency.reuse import engines_available

    if not engines_available():
        result["not_measured"] = "the engine was built on another machine and this one cannot run it"
        return result
    timed = bench_engines(artifacts / ENGINE_NAME, target, artifacts / BASELINE_ENGINE_NAME)
    result.update(measured_ms=timed["engine"]["median_ms"], uncompressed_ms=timed["baseline"]["median_ms"],
                  measured=timed["engine"], uncompressed=timed["baseline"], speedup=timed["speedup"],
                  engine_bytes=(artifacts / ENGINE_NAME).stat().st_size,
                  baseline_engine_bytes=(artifacts / BASELINE_ENGINE_NAME).stat().st_size)
    return result


def bench_engines(engine: Path, target: Target, baseline: Path | None = None,
                  on_burst: Callable[[], None] | None = None) -> dict:
    """Latency of a TensorRT engine (and ``baseline``, interleaved) with CUDA events on this GPU: per engine its
    path and timing (median and quartiles of burst medians), and the speedup over the baseline."""
    from .export.tensorrt import require_tensorrt
    from .latency.trt_runner import time_engines

    for flag, path in (("ARTIFACT", engine), ("--baseline", baseline)):
        if path is not None and (Path(path).suffix != ".engine" or not Path(path).is_file()):
            raise InputError(f"{flag} {path}: expected a TensorRT .engine file written by `hirelc export`")
    require_tensorrt()
    engines = {"engine": Path(engine), **({"baseline": Path(baseline)} if baseline else {})}
    timings = time_engines(engines, target.measure, on_burst)
    result = {"target": target.name, "fingerprint": current_fingerprint(target).to_dict(),
              "measured_with": "CUDA events",
              **{name: {"path": str(engines[name]), **t.to_dict()} for name, t in timings.items()}}
    if baseline:
        result["speedup"] = timings["baseline"].median_ms / timings["engine"].median_ms
    return result
