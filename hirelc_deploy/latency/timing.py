"""Noise-resistant latency measurement: warm-up, interleaved bursts, median of burst medians.

The machines this runs on are shared: one burst can be 20% slower than the next. Interleaving variants
(A B A B ...) exposes them to the same disturbances, and a burst whose own spread shows it was disturbed is
retried after a short pause.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable, Mapping

import numpy as np

from ..targets import MeasureSettings


@dataclass(frozen=True)
class Timing:
    """Latency of one variant in milliseconds: median of burst medians and the quartiles of those medians."""

    median_ms: float
    q1_ms: float
    q3_ms: float
    bursts: int
    retried_bursts: int = 0

    @property
    def spread_ms(self) -> float:
        """Inter-quartile range of the burst medians."""
        return self.q3_ms - self.q1_ms

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(burst_medians: list[float], retried: int = 0) -> Timing:
    """Timing from a list of burst medians (milliseconds)."""
    q1, med, q3 = np.percentile(burst_medians, [25, 50, 75])
    return Timing(float(med), float(q1), float(q3), len(burst_medians), retried)


def _burst(run: Callable[[], object], n: int) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def _rel_iqr(times: list[float]) -> float:
    q1, med, q3 = np.percentile(times, [25, 50, 75])
    return float((q3 - q1) / med) if med > 0 else 0.0


def measure_interleaved(runners: Mapping[str, Callable[[], object]], settings: MeasureSettings,
                        on_burst: Callable[[], None] | None = None) -> dict[str, Timing]:
    """Time every runner in interleaved bursts; ``on_burst`` is called after each burst of each runner."""
    names = list(runners)
    for name in names:
        for _ in range(settings.warmup_runs):
            runners[name]()
    medians: dict[str, list[float]] = {n: [] for n in names}
    retried = dict.fromkeys(names, 0)
    for burst in range(settings.bursts):
        # Rotate the order so no variant always runs right after the same neighbour.
        order = names[burst % len(names):] + names[: burst % len(names)]
        for name in order:
            for attempt in range(settings.max_retries + 1):
                times = _burst(runners[name], settings.runs_per_burst)
                if _rel_iqr(times) <= settings.max_burst_rel_iqr or attempt == settings.max_retries:
                    break
                retried[name] += 1
                time.sleep(settings.retry_sleep_s)
            medians[name].append(statistics.median(times))
            if on_burst:
                on_burst()
    return {n: summarize(medians[n], retried[n]) for n in names}
