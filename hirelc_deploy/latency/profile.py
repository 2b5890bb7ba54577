"""``hirelc profile``: measure a block latency table for a model on a target."""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ..models import get_model_spec
from ..targets import Target, current_fingerprint
from . import attribution
from .ort_runner import HEAD, STEM, make_session, profile_nodes, runner
from .table import LatencyTable, normalize_precisions
from .timing import measure_interleaved
from .variants import build_variant, overhead_model

Progress = Callable[[str, int], None]  # (phase description, units completed since last call)


@dataclass(frozen=True)
class Config:
    """A width/precision configuration of a model: one inner width and one precision per block."""

    widths: tuple[int, ...]
    precisions: tuple[str, ...]


def model_input_shape(model: str, target: Target) -> tuple[int, ...]:
    """Input shape (batch first) a target feeds a model with."""
    return (target.batch_size, *(target.input_shape or get_model_spec(model).input_shape))


def _pairs_pattern(n: int, phase: int, low: str) -> tuple[str, ...]:
    """Precisions in runs of two blocks (``low low fp32 fp32 ...``) shifted by ``phase``."""
    return tuple(low if ((i + phase) // 2) % 2 == 0 else "fp32" for i in range(n))


def profiling_configs(model: str, target: Target, fractions: Sequence[float] | None = None
                      ) -> tuple[list[Config], list[Config], list[Config]]:
    """Uniform networks (every width level at every precision), mixed-precision ones (full width), and
    strictly alternating ones (full width, timed end to end only).

    Mixed networks change precision every two blocks, at four phases, so each boundary is seen changing in
    both directions. Runs of two are used rather than strict alternation because an isolated INT8 block
    converts more cheaply than the runs that real policies contain (measured on ResNet-56: alternation
    under-predicts runs of 2-3 blocks by 3-4%); the alternating networks then measure how much cheaper an
    isolated block's conversions are (see ``LatencyTable.isolated_block_factor``).
    """
    blocks = get_model_spec(model).blocks()
    grid = target.width_grid(blocks)
    uniform = []
    for fraction in sorted(set(fractions or target.width_fractions) | {1.0}):
        widths = tuple(min(options, key=lambda w: abs(w - fraction * b.full_width)) for b, options in zip(blocks, grid))
        uniform += [Config(widths, normalize_precisions(widths, (p,) * len(blocks))) for p in target.precisions]
    full = tuple(b.full_width for b in blocks)
    mixed = [Config(full, _pairs_pattern(len(blocks), phase, low))
             for low in target.precisions if low != "fp32" for phase in range(4)]
    isolated = [Config(full, tuple(low if i % 2 == parity else "fp32" for i in range(len(blocks))))
                for low in target.precisions if low != "fp32" for parity in (0, 1)]
    return list(dict.fromkeys(uniform)), list(dict.fromkeys(mixed)), list(dict.fromkeys(isolated))


def measure_configs(model: str, target: Target, configs: Sequence[Config], workdir: Path,
                    progress: Progress | None = None, profiled: int = 0):
    """Build every configuration, profile the first ``profiled`` ones and time all of them interleaved.

    Returns (timings per config, profiler observations of the profiled ones, per-call overhead timing).
    """
    spec = get_model_spec(model)
    prefixes = [b.onnx_prefix for b in spec.blocks()]
    shape = model_input_shape(model, target)
    note = progress or (lambda *_: None)
    paths = []
    for i, config in enumerate(configs):
        paths.append(build_variant(spec, config.widths, config.precisions, shape, workdir / f"config{i}.onnx"))
        note("exporting", 1)
    profiles = []
    for path in paths[:profiled]:
        profiles.append(profile_nodes(path, target, shape, target.measure.profile_runs,
                                      target.measure.warmup_runs, prefixes))
        note("profiling", 1)
    overhead_path = overhead_model(shape, spec.num_classes, workdir / "overhead.onnx")
    runners = {"overhead": runner(make_session(overhead_path, target), shape)}
    runners.update({f"config{i}": runner(make_session(p, target), shape) for i, p in enumerate(paths)})
    timings = measure_interleaved(runners, target.measure, on_burst=lambda: note("timing", 1))
    observations = [
        attribution.Observation(
            c.widths, c.precisions, timings[f"config{i}"],
            tuple(prof.times_ms.get(p, 0.0) for p in prefixes), prof.times_ms.get(STEM, 0.0),
            prof.times_ms.get(HEAD, 0.0),
        )
        for i, (c, prof) in enumerate(zip(configs, profiles))
    ]
    return [timings[f"config{i}"] for i in range(len(configs))], observations, timings["overhead"]


def profile_steps(model: str, target: Target, fractions: Sequence[float] | None = None) -> int:
    """Number of progress units ``profile`` reports (for progress bars)."""
    uniform, mixed, isolated = profiling_configs(model, target, fractions)
    profiled = len(uniform) + len(mixed)
    n = profiled + len(isolated)
    return n + profiled + target.measure.bursts * (n + 1)


def profile(model: str, target: Target, fractions: Sequence[float] | None = None,
            progress: Progress | None = None) -> LatencyTable:
    """Measure the block latency table of ``model`` on ``target`` (this machine must be the target)."""
    if target.backend != "onnxruntime":
        raise NotImplementedError(f"measured profiling for backend {target.backend} is not implemented yet")
    return measured_table(model, target, measure_configs, fractions, progress)


def measured_table(model: str, target: Target, measure: Callable, fractions: Sequence[float] | None = None,
                   progress: Progress | None = None, method: dict | None = None) -> LatencyTable:
    """The table from ``profiling_configs`` measured by ``measure`` (``measure_configs`` for ONNX Runtime, or a
    backend's equivalent with the same signature and results) and attributed to blocks; ``method`` adds what
    the backend wants recorded about how it measured."""
    blocks = get_model_spec(model).blocks()
    uniform, mixed, isolated = profiling_configs(model, target, fractions)
    profiled = len(uniform) + len(mixed)
    with tempfile.TemporaryDirectory() as tmp:
        timings, observations, overhead = measure(model, target, uniform + mixed + isolated, Path(tmp),
                                                  progress, profiled=profiled)
    fixed, block_tables, transitions = attribution.solve(
        observations[: len(uniform)], observations[len(uniform):], overhead.median_ms,
        [b.name for b in blocks], [b.full_width for b in blocks],
    )
    table = LatencyTable(
        model=model,
        target=target.name,
        kind="measured",
        fingerprint=current_fingerprint(target).to_dict(),
        input_shape=list(model_input_shape(model, target)),
        fixed_ms=fixed,
        blocks=block_tables,
        transitions_ms=transitions,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        method={
            **(method or {}),
            "networks_profiled": len(observations),
            "session_overhead_ms": overhead.median_ms,
            "uniform_e2e_ms": {f"{o.precisions[0]}@{sum(o.widths)}ch": o.e2e.median_ms
                               for o in observations[: len(uniform)]},
            "measure": vars(target.measure),
        },
    )
    table.isolated_block_factor = attribution.isolation_factor(
        table, [(c.widths, c.precisions, t.median_ms) for c, t in zip(isolated, timings[profiled:])])
    return table
