"""The ONNX Runtime backend: variants and artifacts are ONNX files (INT8 blocks through ONNX Runtime's static QDQ
quantization), timed in ONNX Runtime sessions configured from the target on this machine.

ONNX Runtime timed in a process that has just trained or evaluated with PyTorch runs 10-15% slower than in a fresh
one, so every latency a run reports (calibration engines, finalists, the exported engine) is measured in a fresh
process (``isolation.run_isolated``); profiling and validation time their own freshly exported graphs in-process.

Where graphs are timed is four methods (``time_graphs``, ``time_graphs_fresh``, ``node_profile``,
``bench_export``); the remote backend (``remote.py``) answers them from a device's agent and inherits the rest.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
from hirelc_agent.machine import cpu_info
from hirelc_agent.timing import Timing
from torch import nn

from ...data import Images, Normalize
from ...errors import InputError
from ...artifacts.artifact import BASELINE_NAME, MODEL_NAME, write_artifact
from ...artifacts.manifest import Manifest
from ...artifacts.onnx_export import export_onnx
from ...artifacts.ort_int8 import GRAPH_FORMAT, quantize_blocks
from ...isolation import run_isolated
from ...latency import attribution
from ...latency.profile import Config, Measured, Progress, model_input_shape
from ...models import ModelSpec
from ...models.naming import HEAD, STEM, BlockMapper
from ...policy import Policy
from ...precision import Precision
from ...records import BenchResult
from ...runtime.onnxruntime import (
    NodeProfile,
    measure_latency,
    open_session,
    profile_nodes,
    static_shape,
    top1_accuracy,
)
from ..fingerprint import Fingerprint, machine_identity
from ..target import Target
from .common import overhead_model, random_calibration

MEASURED_WITH = "wall clock around each ONNX Runtime inference, interleaved bursts"


class OnnxRuntimeBackend:
    """ONNX Runtime on this machine, with the target's execution provider, threads and batch."""

    name = "onnxruntime"
    calibrates = True
    final_rounds = 5  # fresh processes the exported engine is timed in for the verdict (more: verdict.py)
    graph_format = GRAPH_FORMAT
    fake_quant_int8 = True  # quantization-aware fine-tuning simulates exactly this runtime's QDQ INT8
    scoring_provider: str | None = None  # where bench_files scores top-1 on this machine (None: the target's)
    top1_through = "the exported model in ONNX Runtime on this machine"

    def unavailable(self) -> str | None:
        return None

    def fingerprint(self, target: Target) -> Fingerprint:
        import onnxruntime

        return machine_identity(target, onnxruntime.__version__)

    def measured_on(self, target: Target) -> str:
        """Where this backend times ``target``'s graphs, in words for records and reports."""
        return f"this machine ({cpu_info()[0]})"

    def time_graphs(self, paths: Mapping[str, Path], target: Target, on_burst: Callable[[], None] | None = None
                    ) -> dict[str, Timing]:
        """ONNX files timed interleaved in this process."""
        return measure_latency(paths, target, on_burst)

    def time_graphs_fresh(self, paths: Mapping[str, Path], target: Target) -> dict[str, Timing]:
        """ONNX files timed interleaved away from this process's PyTorch work (a fresh process)."""
        return run_isolated(measure_latency, paths, target)

    def node_profile(self, path: Path, target: Target, mapper: BlockMapper) -> NodeProfile:
        """One graph's time split between blocks (ONNX Runtime's per-node profiler)."""
        return profile_nodes(path, target, target.measure.profile_runs, target.measure.warmup_runs, mapper)

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
            profiles.append(self.node_profile(path, target, mapper))
            note("profiling", 1)
        graphs = {"overhead": overhead_model(shape, spec.num_classes, workdir / "overhead.onnx")}
        graphs.update({f"config{i}": p for i, p in enumerate(paths)})
        timings = self.time_graphs(graphs, target, on_burst=lambda: note("timing", 1))
        observations = [
            attribution.Observation(
                c.widths, c.precisions, timings[f"config{i}"],
                tuple(prof.times_ms.get(p, 0.0) for p in mapper.prefixes), prof.times_ms.get(STEM, 0.0),
                prof.times_ms.get(HEAD, 0.0),
            )
            for i, (c, prof) in enumerate(zip(configs, profiles))
        ]
        return Measured([timings[f"config{i}"] for i in range(len(configs))], observations, timings["overhead"])

    def profile_method(self, target: Target) -> dict:
        return {}

    def time_configs(self, spec: ModelSpec, target: Target, configs: Sequence[tuple[Sequence[int], Sequence[str]]]
                     ) -> list[Timing]:
        input_shape = model_input_shape(spec, target)
        with tempfile.TemporaryDirectory() as tmp:
            paths = {f"c{i}": self.build_variant(spec, w, p, input_shape, Path(tmp) / f"c{i}.onnx")
                     for i, (w, p) in enumerate(configs)}
            timings = self.time_graphs_fresh(paths, target)
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
        return run_isolated(self.bench_files, Path(artifacts) / MODEL_NAME, target, Path(artifacts) / BASELINE_NAME,
                            images, normalize)

    def time_export(self, artifacts: Path, target: Target) -> tuple[float, float]:
        """(model ms, baseline ms) of an export directory, timed interleaved (``time_graphs_fresh``)."""
        timings = self.time_graphs_fresh({"engine": Path(artifacts) / MODEL_NAME,
                                          "uncompressed": Path(artifacts) / BASELINE_NAME}, target)
        return timings["engine"].median_ms, timings["uncompressed"].median_ms

    def check_bench(self, artifact: Path, baseline: Path | None, scoring: bool) -> None:
        """Nothing to refuse early: ``open_session`` names a missing or corrupt file."""

    def bench_files(self, artifact: Path, target: Target, baseline: Path | None, images: Images | None,
                    normalize: Normalize, progress: Progress | None = None) -> BenchResult:
        """Latency of ``artifact`` on the target's device (interleaved with ``baseline`` when given), top-1 on
        ``images`` through the graph in ONNX Runtime on this machine (and through the baseline), file sizes."""
        note = progress or (lambda *_: None)
        session = open_session(artifact, target, self.scoring_provider)
        shape = static_shape(session, artifact)
        if shape[0] != target.batch_size:
            raise InputError(f"{artifact}: exported for batch {shape[0]}, target {target.name} runs batch "
                             f"{target.batch_size}")
        graphs = {"artifact": Path(artifact)}
        base_session = None
        if baseline is not None:
            base_session = open_session(baseline, target, self.scoring_provider)
            if static_shape(base_session, baseline) != shape:
                raise InputError(f"--baseline {baseline}: input shape differs from {artifact}")
            graphs["baseline"] = Path(baseline)
        timings = self.time_graphs(graphs, target, on_burst=lambda: note("timing", 1))
        top1 = baseline_top1 = scored = None
        if images is not None:
            top1, scored = top1_accuracy(session, images, normalize, on_batch=lambda: note("accuracy", 1))
            if base_session is not None:
                baseline_top1, _ = top1_accuracy(base_session, images, normalize,
                                                 on_batch=lambda: note("accuracy", 1))
        return BenchResult(
            artifact=str(artifact), target=target.name, fingerprint=self.fingerprint(target).to_dict(),
            input_shape=shape, file_bytes=Path(artifact).stat().st_size, latency_ms=timings["artifact"].to_dict(),
            baseline=str(baseline) if baseline is not None else None,
            baseline_latency_ms=timings["baseline"].to_dict() if baseline is not None else None,
            baseline_file_bytes=Path(baseline).stat().st_size if baseline is not None else None,
            speedup=timings["baseline"].median_ms / timings["artifact"].median_ms if baseline is not None else None,
            measured_with=f"{MEASURED_WITH}, on {self.measured_on(target)}", top1=top1, top1_images=scored,
            baseline_top1=baseline_top1, top1_through=self.top1_through,
            created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        )

    def bench_steps(self, target: Target, baseline: bool) -> int:
        return target.measure.bursts * (2 if baseline else 1)


BACKEND = OnnxRuntimeBackend()
