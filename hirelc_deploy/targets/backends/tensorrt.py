"""The TensorRT backend: variants and artifacts are ONNX graphs that carry each block's precision (explicit Q/DQ,
FP16 tensors), built into strongly typed engines on the GPU and timed with CUDA events.

Engines must be built where they run, so everything measured needs the ``tensorrt`` package and an NVIDIA GPU on
this machine; ``tensorrt`` is imported only then. Without them a TensorRT target plans: tables are predicted by
the roofline model, exports write the graph (checked on CPU) without an engine, and every latency is labelled
PREDICTED. A TensorRT table is timed end to end with CUDA events and is used as it is (no calibration step).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
from hirelc_agent.timing import Timing
from torch import nn

from ...data import Images, Normalize
from ...errors import InputError
from ...artifacts.artifact import BASELINE_NAME, MODEL_NAME
from ...artifacts.manifest import Manifest, load_manifest
from ...artifacts.trt_artifact import BASELINE_ENGINE_NAME, ENGINE_NAME, write_trt_artifact
from ...artifacts.trt_onnx import block_precisions, write_trt_onnx
from ...latency import attribution
from ...latency.profile import Config, Measured, Progress, model_input_shape
from ...models import ModelSpec
from ...models.naming import BlockMapper
from ...policy import Policy
from ...records import BenchResult
from ...runtime.onnxruntime import reference_session, top1_accuracy
from ...runtime.tensorrt import (
    TensorRTError,
    build_engine,
    check_precisions,
    load_layer_info,
    parse_version,
    require_tensorrt,
    tensorrt_version,
)
from ...runtime.tensorrt_runner import block_times, profile_layers, time_engines
from ..fingerprint import Fingerprint, machine_identity
from ..target import Target
from .common import overhead_model, random_calibration

MEASURED_WITH = "CUDA events around execute_async_v3, one inference in flight, no profiler attached"
TOP1_THROUGH = "the TensorRT-bound ONNX graph run by ONNX Runtime on CPU (not the engine)"


class TensorRTBackend:
    """TensorRT 10+ on this machine's first CUDA GPU."""

    name = "tensorrt"
    calibrates = False
    graph_format = ""  # TensorRT's builder chooses the kernels and layouts of what it is given
    fake_quant_int8 = False  # its INT8 is symmetric per-tensor activations: not what fake_quant.py simulates
    final_rounds = 1  # CUDA-event timing of the engine is not disturbed by the training that came before it

    def unavailable(self) -> str | None:
        try:
            require_tensorrt()
        except TensorRTError as exc:
            return str(exc)
        return None

    def fingerprint(self, target: Target) -> Fingerprint:
        """This machine with its TensorRT version and GPU name, each "none" where missing: TensorRT tables are
        only measured with both."""
        import torch

        version = tensorrt_version()
        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
        return machine_identity(target, ".".join(map(str, version)) if version else "none", gpu)

    def measured_on(self, target: Target) -> str:
        return f"this machine's GPU ({self.fingerprint(target).gpu})"

    def build_variant(self, spec: ModelSpec, widths: Sequence[int], precisions: Sequence[str],
                      input_shape: Sequence[int], path: Path) -> Path:
        self.write_variant(spec, widths, precisions, input_shape, path)
        return Path(path)

    def write_variant(self, spec: ModelSpec, widths: Sequence[int], precisions: Sequence[str],
                      input_shape: Sequence[int], path: Path) -> dict[str, str]:
        """Write the TensorRT-bound ONNX of ``spec`` at ``widths`` (random weights), each block in its precision;
        returns the block prefix -> precision map the engine is checked against (``write_trt_onnx``)."""
        model = spec.build(list(widths)).eval()
        expected = block_precisions(spec.blocks(), widths, precisions)
        return write_trt_onnx(model, expected, input_shape, random_calibration(input_shape), path)

    def _build_checked(self, spec: ModelSpec, index: int, config: Config, shape: Sequence[int], workdir: Path,
                       cache: Path) -> Path:
        """Build configuration ``index`` and refuse an engine that does not run each block in its precision."""
        onnx_path = workdir / f"config{index}.onnx"
        expected = self.write_variant(spec, config.widths, config.precisions, shape, onnx_path)
        build = build_engine(onnx_path, workdir / f"config{index}.engine", cache)
        problems = check_precisions(load_layer_info(build.layer_info_path), expected)
        if problems:
            raise TensorRTError(f"{spec.name} configuration {index} ({' '.join(config.precisions)}): TensorRT does "
                                f"not run it as asked: {'; '.join(problems)}")
        return build.engine_path

    def measure_configs(self, spec: ModelSpec, target: Target, configs: Sequence[Config], workdir: Path,
                        progress: Progress | None = None, profiled: int = 0) -> Measured:
        """Build every configuration (one shared timing cache), split the first ``profiled`` ones' time between
        blocks with TensorRT's per-layer profiler, and time all of them with CUDA events, interleaved."""
        mapper = BlockMapper(b.onnx_prefix for b in spec.blocks())
        shape = model_input_shape(spec, target)
        note = progress or (lambda *_: None)
        cache = workdir / "timing.cache"
        engines = {}
        for i, config in enumerate(configs):
            engines[f"config{i}"] = self._build_checked(spec, i, config, shape, workdir, cache)
            note("building", 1)
        # The overhead network does almost nothing: its latency is the per-call cost no layer accounts for.
        overhead = overhead_model(shape, spec.num_classes, workdir / "overhead.onnx")
        engines["overhead"] = build_engine(overhead, workdir / "overhead.engine", cache).engine_path
        splits = []
        for i in range(profiled):
            layer_ms = profile_layers(engines[f"config{i}"], target.measure.profile_runs, target.measure.warmup_runs)
            splits.append(block_times(layer_ms, mapper))
            note("profiling", 1)
        timings = time_engines(engines, target.measure, on_burst=lambda: note("timing", 1))
        observations = [
            attribution.Observation(c.widths, c.precisions, timings[f"config{i}"],
                                    tuple(per_block[p] for p in mapper.prefixes), stem, head)
            for i, (c, (per_block, stem, head)) in enumerate(zip(configs, splits))
        ]
        return Measured([timings[f"config{i}"] for i in range(len(configs))], observations, timings["overhead"])

    def profile_method(self, target: Target) -> dict:
        trt = require_tensorrt()
        return {"tensorrt_version": ".".join(map(str, parse_version(trt.__version__))), "e2e_timing": MEASURED_WITH,
                "block_split": "TensorRT IProfiler per-layer medians, in separate runs"}

    def time_configs(self, spec: ModelSpec, target: Target, configs: Sequence[tuple[Sequence[int], Sequence[str]]]
                     ) -> list[Timing]:
        shape = model_input_shape(spec, target)
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            engines = {f"c{i}": self._build_checked(spec, i, Config(tuple(w), tuple(p)), shape, workdir,
                                                    workdir / "timing.cache")
                       for i, (w, p) in enumerate(configs)}
            timings = time_engines(engines, target.measure)
        return [timings[f"c{i}"] for i in range(len(configs))]

    def write_artifact(self, student: nn.Module, teacher: nn.Module, spec: ModelSpec, policy: Policy,
                       input_shape: Sequence[int], calibration: Sequence[np.ndarray], checks: Sequence[np.ndarray],
                       out_dir: Path, table_fingerprint: dict, finetune: dict, sparse_layers: Sequence[str] = ()
                       ) -> Manifest:
        return write_trt_artifact(student, teacher, spec, policy, input_shape, calibration, checks, out_dir,
                                  table_fingerprint, finetune, sparse_layers)

    def artifact_reusable(self, manifest: Manifest) -> bool:
        # Exported where no engine could be built: on a machine that can build one, export again.
        return bool(manifest.engine.get("built")) or self.unavailable() is not None

    def bench_export(self, artifacts: Path, target: Target, images: Images, normalize: Normalize) -> BenchResult:
        """Top-1 of the compressed and uncompressed graphs (through ONNX Runtime on CPU), file sizes, and, where
        the engine was built and this machine can run it, both engines timed interleaved with CUDA events."""
        artifacts = Path(artifacts)
        engine = load_manifest(artifacts).engine
        model, baseline = artifacts / MODEL_NAME, artifacts / BASELINE_NAME
        session = reference_session(model, basic_only=True)
        top1, scored = top1_accuracy(session, images, normalize)
        result = BenchResult(
            artifact=str(model), target=target.name, fingerprint=self.fingerprint(target).to_dict(),
            input_shape=list(session.get_inputs()[0].shape), file_bytes=model.stat().st_size,
            baseline=str(baseline), baseline_file_bytes=baseline.stat().st_size,
            top1=top1, top1_images=scored,
            baseline_top1=top1_accuracy(reference_session(baseline, basic_only=True), images, normalize)[0],
            top1_through=TOP1_THROUGH, engine=dict(engine),
            created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        )
        if not engine.get("built"):
            return dataclasses.replace(result, not_measured=engine.get("reason", "no engine was built"))
        if self.unavailable() is not None:
            return dataclasses.replace(result, not_measured="the engine was built on another machine and this one "
                                       "cannot run it")
        timed = self.bench_files(artifacts / ENGINE_NAME, target, artifacts / BASELINE_ENGINE_NAME, None, normalize)
        sizes = {"engine_bytes": (artifacts / ENGINE_NAME).stat().st_size,
                 "baseline_engine_bytes": (artifacts / BASELINE_ENGINE_NAME).stat().st_size}
        return dataclasses.replace(result, latency_ms=timed.latency_ms, baseline_latency_ms=timed.baseline_latency_ms,
                                   speedup=timed.speedup, measured_with=timed.measured_with,
                                   engine={**engine, **sizes})

    def time_export(self, artifacts: Path, target: Target) -> tuple[float, float]:
        """(engine ms, uncompressed engine ms) of an export directory, timed interleaved with CUDA events."""
        timings = time_engines({"engine": Path(artifacts) / ENGINE_NAME,
                                "uncompressed": Path(artifacts) / BASELINE_ENGINE_NAME}, target.measure)
        return timings["engine"].median_ms, timings["uncompressed"].median_ms

    def check_bench(self, artifact: Path, baseline: Path | None, scoring: bool) -> None:
        if scoring:
            raise InputError("--data: top-1 through a TensorRT engine is not measured by bench; `hirelc export` and "
                             "`compress` report the graph's top-1 (through ONNX Runtime on CPU)")
        for flag, path in (("ARTIFACT", artifact), ("--baseline", baseline)):
            if path is not None and (Path(path).suffix != ".engine" or not Path(path).is_file()):
                raise InputError(f"{flag} {path}: expected a TensorRT .engine file written by `hirelc export`")

    def bench_files(self, artifact: Path, target: Target, baseline: Path | None, images: Images | None,
                    normalize: Normalize, progress: Progress | None = None) -> BenchResult:
        """Latency of a TensorRT engine (and ``baseline``, interleaved) with CUDA events on this GPU."""
        self.check_bench(artifact, baseline, images is not None)
        require_tensorrt()
        note = progress or (lambda *_: None)
        engines = {"engine": Path(artifact), **({"baseline": Path(baseline)} if baseline else {})}
        timings = time_engines(engines, target.measure, lambda: note("timing", 1))
        return BenchResult(
            artifact=str(artifact), target=target.name, fingerprint=self.fingerprint(target).to_dict(),
            input_shape=None, file_bytes=Path(artifact).stat().st_size,
            latency_ms=timings["engine"].to_dict(), baseline=str(baseline) if baseline else None,
            baseline_latency_ms=timings["baseline"].to_dict() if baseline else None,
            baseline_file_bytes=Path(baseline).stat().st_size if baseline else None,
            speedup=timings["baseline"].median_ms / timings["engine"].median_ms if baseline else None,
            measured_with=MEASURED_WITH, created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))

    def bench_steps(self, target: Target, baseline: bool) -> int:
        return target.measure.bursts * (2 if baseline else 1)


BACKEND = TensorRTBackend()
