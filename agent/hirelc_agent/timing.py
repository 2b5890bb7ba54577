"""Noise-resistant latency measurement: warm-up, interleaved bursts, median of burst medians.

One implementation for every place that times: ``hirelc`` on this machine and ``hirelc-agent`` on a device import
it from here, so a table measured through an agent follows exactly the protocol of a local one.

The machines this runs on are shared: one burst can be 20% slower than the next. Interleaving variants
(A B A B ...) exposes them to the same disturbances; before each round of bursts we wait while other processes keep
the CPU busy, and a burst whose own spread shows it was disturbed is retried after a short pause.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable, Mapping

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MeasureSettings:
    """How latencies are measured: warm-up, interleaved bursts, and when a burst counts as disturbed."""

    warmup_runs: int = 20
    bursts: int = 7
    max_bursts: int = 15  # extra rounds allowed while burst medians disagree by more than max_rel_spread
    max_rel_spread: float = 0.03
    runs_per_burst: int = 30
    profile_runs: int = 30
    max_burst_rel_iqr: float = 0.30
    max_retries: int = 3
    retry_sleep_s: float = 0.5
    max_busy_cores: float = 0.5  # load from other processes above which a burst round waits
    max_wait_s: float = 30.0
    # A latency table whose networks' medians are less certain than this (relative standard error, estimated from
    # the spread of their burst medians; the median over networks) is measured again with more bursts, then
    # refused: a noisy device must not give a table that looks measured.
    max_table_uncertainty: float = 0.03


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


def _burst(run: Callable[[], object], n: int, self_timed: bool = False) -> list[float]:
    times = []
    for _ in range(n):
        if self_timed:
            times.append(float(run()))
            continue
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def _rel_iqr(times: list[float]) -> float:
    q1, med, q3 = np.percentile(times, [25, 50, 75])
    return float((q3 - q1) / med) if med > 0 else 0.0


def _busy_cores(sample_s: float = 0.2) -> float:
    """CPU cores kept busy by other processes over a short idle sample (0 where /proc/stat is missing)."""
    def read() -> tuple[int, int]:
        with open("/proc/stat", encoding="ascii") as handle:
            values = [int(v) for v in handle.readline().split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        return sum(values) - idle, sum(values)

    try:
        busy0, total0 = read()
        time.sleep(sample_s)
        busy1, total1 = read()
    except OSError:
        return 0.0
    cores = os.cpu_count() or 1
    return cores * (busy1 - busy0) / max(1, total1 - total0)


def wait_until_quiet(max_busy_cores: float, max_wait_s: float) -> float:
    """Wait (up to ``max_wait_s``) until other processes use at most ``max_busy_cores``; return the last load."""
    deadline = time.monotonic() + max_wait_s
    load = _busy_cores()
    while load > max_busy_cores and time.monotonic() < deadline:
        log.info("machine busy (%.2f cores in use by others), waiting", load)
        time.sleep(1.0)
        load = _busy_cores()
    if load > max_busy_cores:
        log.warning("machine still busy (%.2f cores in use by others): timings may be inflated", load)
    return load


def _too_spread(medians: dict[str, list[float]], settings: MeasureSettings) -> bool:
    """True while some variant's burst medians disagree by more than the target relative spread."""
    return any(_rel_iqr(values) > settings.max_rel_spread for values in medians.values() if values)


def measure_interleaved(runners: Mapping[str, Callable[[], object]], settings: MeasureSettings,
                        on_burst: Callable[[], None] | None = None, self_timed: bool = False) -> dict[str, Timing]:
    """Time every runner in interleaved bursts; ``on_burst`` is called after each burst of each runner.

    Runners are timed by the host clock, or, ``self_timed``, return their own time in ms (a GPU inference timed
    with CUDA events).

    After ``settings.bursts`` rounds, more rounds follow (up to ``settings.max_bursts``) while any variant's
    burst medians are spread by more than ``settings.max_rel_spread``: a disturbed measurement is repeated
    rather than reported.
    """
    names = list(runners)
    for name in names:
        for _ in range(settings.warmup_runs):
            runners[name]()
    medians: dict[str, list[float]] = {n: [] for n in names}
    retried = dict.fromkeys(names, 0)
    burst = 0
    while burst < settings.bursts or (burst < settings.max_bursts and _too_spread(medians, settings)):
        wait_until_quiet(settings.max_busy_cores, settings.max_wait_s)
        # Rotate the order so no variant always runs right after the same neighbour.
        order = names[burst % len(names):] + names[: burst % len(names)]
        for name in order:
            for attempt in range(settings.max_retries + 1):
                times = _burst(runners[name], settings.runs_per_burst, self_timed)
                if _rel_iqr(times) <= settings.max_burst_rel_iqr or attempt == settings.max_retries:
                    break
                retried[name] += 1
                time.sleep(settings.retry_sleep_s)
            medians[name].append(statistics.median(times))
            if on_burst:
                on_burst()
        burst += 1
    return {n: summarize(medians[n], retried[n]) for n in names}
