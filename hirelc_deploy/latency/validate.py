"""``hirelc profile --validate N``: does the table predict real exported engines?"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..models import ModelSpec
from ..precision import REFERENCE
from ..records import Record
from ..targets import backend_of
from ..targets.target import Target
from .profile import Config, Measure, Progress
from .table import LatencyTable, normalize_precisions


@dataclass(frozen=True)
class ValidationRow:
    """One validated configuration: predicted vs measured end-to-end latency."""

    label: str
    widths: list[int]
    precisions: list[str]
    predicted_ms: float
    measured_ms: float
    measured_spread_ms: float

    @property
    def abs_pct_error(self) -> float:
        return 100.0 * abs(self.predicted_ms - self.measured_ms) / self.measured_ms

    @property
    def mixed(self) -> bool:
        return len(set(self.precisions)) > 1 or self.precisions[0] != REFERENCE


def _summary(rows: list[ValidationRow]) -> dict:
    errors = [r.abs_pct_error for r in rows]
    if not errors:
        return {"count": 0}
    return {"count": len(errors), "median_ape": statistics.median(errors), "max_ape": max(errors)}


@dataclass(frozen=True)
class ValidationReport(Record):
    """All validated configurations and error summaries (all, FP32-only, with INT8 blocks): ``validation.json``."""

    what: ClassVar[str] = "validation record"
    model: str
    target: str
    rows: list[ValidationRow]
    schema_version: int = 1

    def summary(self) -> dict:
        return {
            "all": _summary(self.rows),
            "fp32": _summary([r for r in self.rows if not r.mixed]),
            "int8_or_mixed": _summary([r for r in self.rows if r.mixed]),
        }

    def to_dict(self) -> dict:
        """The record, with each row's error and the summaries written out for people reading the file."""
        return {**asdict(self), "rows": [{**asdict(r), "abs_pct_error": r.abs_pct_error} for r in self.rows],
                "summary": self.summary()}


def validation_configs(table: LatencyTable, count: int, seed: int = 0) -> list[tuple[str, Config]]:
    """Full-width FP32, half-width INT8, then ``count`` random configurations.

    Random ones alternate between all-FP32 (random widths) and mixed precision (random widths, each block
    INT8 or FP32 at random) so both error goals are checked.
    """
    rng = np.random.default_rng(seed)
    precisions = table.precisions
    low = next((p for p in precisions if p != REFERENCE), REFERENCE)
    n = len(table.blocks)
    full = tuple(b.full_width for b in table.blocks)
    half = tuple(min(b.widths, key=lambda w: abs(w - b.full_width / 2)) for b in table.blocks)
    configs = [(f"{REFERENCE}-full", Config(full, (REFERENCE,) * n)), (f"{low}-half", Config(half, (low,) * n))]
    for i in range(count):
        widths = tuple(int(rng.choice(b.widths)) for b in table.blocks)
        if i % 2 == 0 or low == REFERENCE:
            precs = (REFERENCE,) * n
        else:
            precs = tuple(str(p) for p in rng.choice(precisions, size=n))
        configs.append((f"random{i}", Config(widths, normalize_precisions(widths, precs))))
    return configs


def validate(table: LatencyTable, spec: ModelSpec, target: Target, count: int, seed: int = 0,
             progress: Progress | None = None, measure: Measure | None = None) -> ValidationReport:
    """Export each validation configuration for real, time them interleaved with ``measure`` (default: the
    target's backend's ``measure_configs``) and compare with the table."""
    measure = measure or backend_of(target).measure_configs
    configs = validation_configs(table, count, seed)
    with tempfile.TemporaryDirectory() as tmp:
        timings = measure(spec, target, [c for _, c in configs], Path(tmp), progress).timings
    rows = [
        ValidationRow(label, list(c.widths), list(c.precisions), table.predict(c.widths, c.precisions),
                      t.median_ms, t.spread_ms)
        for (label, c), t in zip(configs, timings)
    ]
    return ValidationReport(table.model, table.target, rows)


def validate_steps(target: Target, count: int) -> int:
    """Number of progress units ``validate`` reports."""
    return (count + 2) + target.measure.bursts * (count + 3)
