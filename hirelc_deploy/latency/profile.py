"""How a block latency table is measured: the networks profiled, and the table made of their measurements.

A backend (``targets/backends``) builds and times the networks; this module chooses them and turns what was
measured into a ``LatencyTable`` (``attribution`` splits each network's time between its blocks).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import statistics
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

from ..errors import NoisyDeviceError
from ..models import ModelSpec
from ..precision import REFERENCE
from ..targets.fingerprint import Fingerprint
from ..targets.target import Target
from . import attribution
from .table import LatencyTable, normalize_precisions
from hirelc_agent.timing import Timing

Progress = Callable[[str, int], None]  # (phase description, units completed since last call)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Config:
    """A width/precision configuration of a model: one inner width and one precision per block."""

    widths: tuple[int, ...]
    precisions: tuple[str, ...]


class Measured(NamedTuple):
    """What a backend measured of some configurations: end-to-end timing of each, the block split of the profiled
    ones, and the runtime's per-call overhead (timed with them)."""

    timings: list[Timing]
    observations: list[attribution.Observation]
    overhead: Timing


# A backend's ``measure_configs``: (model spec, target, configs, work directory, progress, profiled) -> Measured
Measure = Callable[..., Measured]


def model_input_shape(spec: ModelSpec, target: Target) -> tuple[int, ...]:
    """Input shape (batch first) a target feeds a model with."""
    return (target.batch_size, *(target.input_shape or spec.input_shape))


def _pairs_pattern(n: int, phase: int, low: str) -> tuple[str, ...]:
    """Precisions in runs of two blocks (``low low fp32 fp32 ...``) shifted by ``phase``."""
    return tuple(low if ((i + phase) // 2) % 2 == 0 else REFERENCE for i in range(n))


def profiling_configs(spec: ModelSpec, target: Target, fractions: Sequence[float] | None = None
                      ) -> tuple[list[Config], list[Config], list[Config]]:
    """Uniform networks (every width level at every precision), mixed-precision ones (full width), and
    strictly alternating ones (full width, timed end to end only).

    Mixed networks change precision every two blocks, at four phases, so each boundary is seen changing in
    both directions. Runs of two are used rather than strict alternation because an isolated INT8 block
    converts more cheaply than the runs that real policies contain (measured on ResNet-56: alternation
    under-predicts runs of 2-3 blocks by 3-4%); the alternating networks then measure how much cheaper an
    isolated block's conversions are (see ``LatencyTable.isolated_block_factor``).
    """
    blocks = spec.blocks()
    grid = target.width_grid(blocks)
    uniform = []
    for fraction in sorted(set(fractions or target.width_fractions) | {1.0}):
        widths = tuple(min(options, key=lambda w: abs(w - fraction * b.full_width)) for b, options in zip(blocks, grid))
        uniform += [Config(widths, normalize_precisions(widths, (p,) * len(blocks))) for p in target.precisions]
    full = tuple(b.full_width for b in blocks)
    mixed = [Config(full, _pairs_pattern(len(blocks), phase, low))
             for low in target.precisions if low != REFERENCE for phase in range(4)]
    isolated = [Config(full, tuple(low if i % 2 == parity else REFERENCE for i in range(len(blocks))))
                for low in target.precisions if low != REFERENCE for parity in (0, 1)]
    return list(dict.fromkeys(uniform)), list(dict.fromkeys(mixed)), list(dict.fromkeys(isolated))


def median_uncertainty(timings: Sequence[Timing]) -> float:
    """How certain a set of measured medians is: the median over networks of each one's relative standard error,
    estimated from the inter-quartile range of its burst medians (sigma ~ IQR / 1.349; the standard error of a
    median of n values ~ 1.253 sigma / sqrt(n))."""
    return statistics.median(1.253 / 1.349 * t.spread_ms / t.median_ms / math.sqrt(t.bursts) for t in timings)


def profile_steps(spec: ModelSpec, target: Target, fractions: Sequence[float] | None = None) -> int:
    """Number of progress units ``profile`` reports (for progress bars)."""
    uniform, mixed, isolated = profiling_configs(spec, target, fractions)
    profiled = len(uniform) + len(mixed)
    n = profiled + len(isolated)
    return n + profiled + target.measure.bursts * (n + 1)


def measured_table(spec: ModelSpec, target: Target, measure: Measure, fingerprint: Fingerprint,
                   fractions: Sequence[float] | None = None, progress: Progress | None = None,
                   method: dict | None = None) -> LatencyTable:
    """The table from ``profiling_configs`` measured by ``measure`` (a backend's ``measure_configs``) on the
    device ``fingerprint`` names, attributed to blocks; ``method`` adds what the backend records about how it
    measured."""
    blocks = spec.blocks()
    uniform, mixed, isolated = profiling_configs(spec, target, fractions)
    profiled = len(uniform) + len(mixed)
    def measured(target: Target) -> tuple[Measured, float]:
        with tempfile.TemporaryDirectory() as tmp:
            found = Measured(*measure(spec, target, uniform + mixed + isolated, Path(tmp), progress,
                                      profiled=profiled))
        return found, median_uncertainty(found.timings)

    limit = target.measure.max_table_uncertainty
    (timings, observations, overhead), uncertainty = measured(target)
    if uncertainty > limit:
        log.warning("profile of %s on %s: medians uncertain by %.1f%% (limit %.1f%%); measuring again with more "
                    "bursts", spec.name, target.name, 100 * uncertainty, 100 * limit)
        settings = target.measure
        (timings, observations, overhead), uncertainty = measured(replace(target, measure=replace(
            settings, bursts=settings.max_bursts, max_bursts=2 * settings.max_bursts)))
        if uncertainty > limit:
            raise NoisyDeviceError(
                f"{target.name}: the device was too noisy to profile {spec.name}: its median latencies were "
                f"uncertain by {100 * uncertainty:.1f}% (from the spread of their burst medians; [measure] "
                f"max_table_uncertainty is {100 * limit:.1f}%), also with {max(t.bursts for t in timings)} bursts "
                "per network; no table written. Stop other work on the device and profile again")
    fixed, block_tables, transitions = attribution.solve(
        observations[: len(uniform)], observations[len(uniform):], overhead.median_ms,
        [b.name for b in blocks], [b.full_width for b in blocks],
    )
    table = LatencyTable(
        model=spec.name,
        target=target.name,
        kind="measured",
        fingerprint=fingerprint.to_dict(),
        input_shape=list(model_input_shape(spec, target)),
        fixed_ms=fixed,
        blocks=block_tables,
        transitions_ms=transitions,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        method={
            **(method or {}),
            "networks_profiled": len(observations),
            "median_uncertainty": uncertainty,
            "session_overhead_ms": overhead.median_ms,
            "uniform_e2e_ms": {f"{o.precisions[0]}@{sum(o.widths)}ch": o.e2e.median_ms
                               for o in observations[: len(uniform)]},
            "measure": vars(target.measure),
        },
    )
    table.isolated_block_factor = attribution.isolation_factor(
        table, [(c.widths, c.precisions, t.median_ms) for c, t in zip(isolated, timings[profiled:])])
    return table
