"""Calibrate a block latency table against a few real end-to-end engines measured now.

A table adds up blocks measured one network at a time. How far the sum is from a whole engine depends on the
machine's state and on the precision: on a 2-core AMD EPYC at batch 32, FP32 configurations measured ~10% above
the table and mixed FP32/INT8 ones ~30% above it (the quantize/dequantize boundaries cost more inside a whole
network than in the profiling networks). A single drift factor cannot fix both, and a search that trusts the
raw table picks INT8-heavy policies that miss the budget.

So before searching, ``compress`` times a handful of whole engines near the budget (built with random weights:
latency does not depend on weight values), splits each prediction into its FP32 part (stem, head and FP32
blocks), INT8 part and precision-boundary part, and fits one factor per part by least squares on relative
error, pulled towards 1 so that a few noisy points cannot move the table far. The calibrated table is what the
search sees; every prediction it reports stays labelled as predicted.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import ClassVar, Sequence

import numpy as np

from ..precision import Precision
from ..records import Record
from .table import LatencyTable

PARTS = (Precision.FP32.value, Precision.INT8.value, "boundaries")
# Strength of the pull of each factor towards 1, against relative residuals (0.1 ~ "the table is right to
# within tens of percent unless several configurations say otherwise").
_PRIOR_WEIGHT = 0.1
_FACTOR_RANGE = (0.5, 2.5)


@dataclass
class Calibration(Record):
    """Per-part factors fitted to real engines, and the measurements they come from (``calibration.json``).

    A backend whose tables need no correction (``Backend.calibrates`` false) records ``skipped`` instead."""

    what: ClassVar[str] = "calibration record"
    factors: dict[str, float]
    points: list[dict] = field(default_factory=list)
    skipped: str | None = None
    schema_version: int = 1

    def apply(self, table: LatencyTable) -> LatencyTable:
        """A copy of ``table`` with each part scaled by its factor."""
        out = copy.deepcopy(table)
        a, b, c = (self.factors[p] for p in PARTS)
        out.fixed_ms *= a
        for block in out.blocks:
            for precision, values in block.latency_ms.items():
                scale = b if precision == Precision.INT8 else a
                block.latency_ms[precision] = [v * scale for v in values]
        out.transitions_ms = [{k: v * c for k, v in t.items()} for t in out.transitions_ms]
        out.method = {**table.method, "calibration": {"engines": len(self.points), "factors": dict(self.factors)}}
        return out


def fit(table: LatencyTable, configs: Sequence[tuple[Sequence[int], Sequence[str]]], measured: Sequence[float]
        ) -> Calibration:
    """Least-squares factors on relative error, regularised towards 1; parts no configuration uses stay 1."""
    a = np.array([table.predict_parts(w, p) for w, p in configs])
    y = np.asarray(measured, dtype=float)
    used = np.abs(a).sum(axis=0) > 1e-12
    rows = a[:, used] / y[:, None]
    prior = _PRIOR_WEIGHT * np.eye(int(used.sum()))
    solution, *_ = np.linalg.lstsq(np.vstack([rows, prior]), np.concatenate([np.ones(len(y)), prior.diagonal()]),
                                   rcond=None)
    factors = np.ones(len(PARTS))
    factors[used] = np.clip(solution, *_FACTOR_RANGE)
    points = [{"widths": list(w), "precisions": list(p), "table_ms": float(part.sum()), "measured_ms": float(m),
               "calibrated_ms": float(part @ factors)} for (w, p), part, m in zip(configs, a, y)]
    return Calibration(dict(zip(PARTS, map(float, factors))), points)
