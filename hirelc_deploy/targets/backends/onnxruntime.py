"""The ONNX Runtime backend: variants and artifacts are ONNX files (INT8 blocks through ONNX Runtime's static QDQ
quantization), timed in ONNX Runtime sessions configured from the target on this machine.

ONNX Runtime timed in a process that has just trained or evaluated with PyTorch runs 10-15% slower than in a fresh
one, so every latency a run reports (calibration engines, finalists, the exported engine) is measured in a fresh
process (``isolation.run_isolated``); profiling and validation time their own freshly exported graphs in-process.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from torch import nn

from ...data import Images, Normalize
from ...errors import InputError
from ...artifacts.artifact import BASELINE_NAME, MODEL_NAME, write_artifact
from ...artifacts.manifest import Manifest
from ...artifacts.onnx_export import export_onnx
from ...artifacts.ort_int8 import quantize_blocks
from ...isolation import run_isolated
from ...latency import attribution
from ...latency.profile import Config, Measured, Progress, model_input_shape
from ...latency.timing import Timing, measure_interleaved
from ...models import ModelSpec
from ...models.naming import HEAD, STEM, BlockMapper
from ...policy import Policy
from ...precision import Precision
from ...records import BenchResult
from ...runtime.onnxruntime import (
    make_session,
    measure_latency,
    open_session,
    profile_nodes,
    runner,
    static_shape,
    top1_accuracy,
)
from ..target import Target
from . import current_fingerprint
from .common import overhead_model, random_calibration

MEASURED_WITH = "wall clock around each ONNX Runtime inference, interleaved bursts"


class OnnxRuntimeBackend:
    """ONNX Runtime on this machine, with the target's execution provider, threads and batch."""

    name = "onnxruntime"
    calibrates = True
    final_rounds = 3  # fresh processes the exported engine is timed in for the verdict

    def unavailable(self) -> str | None:
        return None

    def runtime(self) -> tuple[str, str]:
        import onnxruntime

        return onnxruntime.__version__, ""

    def build_variant(self, spec: ModelSpec, widths: Sequence[int], precisions: Sequence[str],
                      input_shape: Sequence[int], path: Path) -> Path:
        """Export ``spec`` at ``widths`` (random weights) with its INT8 blocks quantized, to ``path``."""
        model = spec.build(list(widths))
        # A removed block (width 0) runs only its shortcut's data movement: nothing to quantize.
        int8 = [b.onnx_prefix for b, w, p in zip(spec.blocks(), widths, precisions) if p == Precision.INT8 and w > 0]
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = export_onnx(model, tuple(input_shape), Path(tmp) / "fp32.onnx")
            return quantize_blocks(fp32, path, int8, random_calibration(input_shape))

    def measure_configs(self, spec: ModelSpec, target: Target, configs: Sequence[Config], workdir: Path,
                        progress: Progress | None = None, profiled: int = 0) -> Measured:
        mapper = BlockMapper(b.onnx_prefix for b in spec.blocks())
        shape = model_input_shape(spec, target)
        note = progress or (lambda *_: None)
        paths = []
        for i, config in enumerate(configs):
            paths.append(self.build_variant(spec, config.widths, config.precisions, shape, workdir / f"config{i}.onnx"))
            note("exporting", 1)
        profiles = []
        for path in paths[:profiled]:
            profiles.append(profile_nodes(path, target, shape, target.measure.profile_runs,
                                          target.measure.warmup_runs, mapper))
            note("profiling", 1)
        overhead_path = overhead_model(shape, spec.num_classes, workdir / "overhead.onnx")
        runners = {"overhead": runner(make_session(overhead_path, target), shape)}
        runners.update({f"config{i}": runner(make_session(p, target), shape) for i, p in enumerate(paths)})
        timings = measure_interleaved(runners, target.measure, on_burst=lambda: note("timing", 1))
        observations = [
            attribution.Observation(
                c.widths, c.precisions, timings[f"config{i}"],
                tuple(prof.times_ms.get(p, 0.0) for p in mapper.prefixes), prof.times_ms.get(STEM, 0.0),
                prof.times_ms.get(HEAD, 0.0),
            )
            for i, (c, prof) in enumerate(zip(configs, profiles))
        ]
        return Measured([timings[f"config{i}"] for i in range(len(configs))], observations, timings["overhead"])

    def profile_method(self) -> dict:
        return {}

    def time_configs(self, spec: ModelSpec, target: Target, configs: Sequence[tuple[Sequence[int], Sequence[str]]]
                     ) -> list[Timing]:
        input_shape = model_input_shape(spec, target)
        with tempfile.TemporaryDirectory() as tmp:
            paths = {f"c{i}": self.build_variant(spec, w, p, input_shape, Path(tmp) / f"c{i}.onnx")
                     for i, (w, p) in enumerate(configs)}
            timings = run_isolated(measure_latency, paths, target)
        return [timings[f"c{i}"] for i in range(len(configs))]

    def write_artifact(self, student: nn.Module, teacher: nn.Module, spec: ModelSpec, policy: Policy,
                       input_shape: Sequence[int], calibration: Sequence[np.ndarray], checks: Sequence[np.ndarray],
                       out_dir: Path, table_fingerprint: dict, finetune: dict, sparse_layers: Sequence[str] = ()
                       ) -> Manifest:
        return write_artifact(student, teacher, spec, policy, input_shape, calibration, checks, out_dir,
                              table_fingerprint, finetune)

    def artifact_reusable(self, manifest: Manifest) -> bool:
        return True

    def bench_export(self, artifacts: Path, target: Target, images: Images, normalize: Normalize) -> BenchResult:
        """``bench_files`` of the exported model against its baseline, in a fresh process."""
        return run_isolated(bench_onnx, Path(artifacts) / MODEL_NAME, target, images, normalize,
                            Path(artifacts) / BASELINE_NAME)

    def time_export(self, artifacts: Path, target: Target) -> tuple[float, float]:
        """(model ms, baseline ms) of an export directory, timed interleaved in a fresh process."""
        timings = run_isolated(measure_latency, {"engine": Path(artifacts) / MODEL_NAME,
                                                 "uncompressed": Path(artifacts) / BASELINE_NAME}, target)
        return timings["engine"].median_ms, timings["uncompressed"].median_ms

    def check_bench(self, artifact: Path, baseline: Path | None, scoring: bool) -> None:
        """Nothing to refuse early: ``open_session`` names a missing or corrupt file."""

    def bench_files(self, artifact: Path, target: Target, baseline: Path | None, images: Images | None,
                    normalize: Normalize, progress: Progress | None = None) -> BenchResult:
        note = progress or (lambda *_: None)
        return bench_onnx(artifact, target, images, normalize, baseline, lambda phase: note(phase, 1))

    def bench_steps(self, target: Target, baseline: bool) -> int:
        return target.measure.bursts * (2 if baseline else 1)


def bench_onnx(artifact: Path, target: Target, images: Images | None, normalize: Normalize,
               baseline: Path | None = None, on_progress: Callable[[str], None] | None = None) -> BenchResult:
    """Measure ``artifact`` on this machine as ``target``: latency (interleaved with ``baseline`` when given),
    top-1 on ``images`` through the engine itself (and through the baseline), and file sizes."""
    note = on_progress or (lambda *_: None)
    session = open_session(artifact, target)
    shape = static_shape(session, artifact)
    if shape[0] != target.batch_size:
        raise InputError(f"{artifact}: exported for batch {shape[0]}, target {target.name} runs batch "
                         f"{target.batch_size}")
    runners = {"artifact": runner(session, shape)}
    base_session = None
    if baseline is not None:
        base_session = open_session(baseline, target)
        if static_shape(base_session, baseline) != shape:
            raise InputError(f"--baseline {baseline}: input shape differs from {artifact}")
        runners["baseline"] = runner(base_session, shape)
    timings = measure_interleaved(runners, target.measure, on_burst=lambda: note("timing"))
    top1 = baseline_top1 = scored = None
    if images is not None:
        top1, scored = top1_accuracy(session, images, normalize, on_batch=lambda: note("accuracy"))
        if base_session is not None:
            baseline_top1, _ = top1_accuracy(base_session, images, normalize, on_batch=lambda: note("accuracy"))
    return BenchResult(
        artifact=str(artifact), target=target.name, fingerprint=current_fingerprint(target).to_dict(),
        input_shape=shape, file_bytes=Path(artifact).stat().st_size, latency_ms=timings["artifact"].to_dict(),
        baseline=str(baseline) if baseline is not None else None,
        baseline_latency_ms=timings["baseline"].to_dict() if baseline is not None else None,
        baseline_file_bytes=Path(baseline).stat().st_size if baseline is not None else None,
        speedup=timings["baseline"].median_ms / timings["artifact"].median_ms if baseline is not None else None,
        measured_with=MEASURED_WITH, top1=top1, top1_images=scored,
        baseline_top1=baseline_top1, top1_through="the exported model in ONNX Runtime on this machine",
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )


BACKEND = OnnxRuntimeBackend()
