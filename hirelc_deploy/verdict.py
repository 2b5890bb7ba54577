"""The verdict on an exported engine: its latency over several fresh processes, and whether it meets the budget.

Shared VMs run in speed states that come and go: on a 2-core AMD EPYC VM a slow state slowed an INT8 engine by
~37% and its FP32 baseline by ~20% from one process to the next, so even the ratio of two models timed interleaved
in one process moved with it. On the 2-core Xeon VM of issue 17 the same engine's process medians spread by 40%
(``tools/results/bench_int8_layout.md``: ResNet-56 INT8 3.46-5.55 ms over 7 processes), burst medians within one
process by more (FP32 ResNet-56 4.1-6.6 ms over 30 interleaved bursts, the INT8/FP32 ratio of neighbouring
bursts 0.51-1.42), and the whole machine ran 30% faster for a while with nothing of ours running. A median over
processes then judges the engine partly by how many processes happened to land in which state.

The rule: each process times the engine interleaved with the uncompressed model; a process whose engine ran more
than ``SLOW_BAND`` above the fastest process's ran in the slow state. The verdict is the median over the
fast-state processes (what the device does when nothing slows it), and how often the slow state was seen is
reported beside it. With fewer than ``MIN_FAST`` fast-state processes more are timed, up to ``MAX_PROCESSES``;
if that still leaves too few, the median over every process is used, and the rule says so.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .budget import Budget
from .records import FinalLatency

SLOW_BAND = 0.10
MIN_FAST = 3
MAX_PROCESSES = 9
NOISE = 0.05  # a miss within this is named as within measurement noise


def fast_state(engine_ms: Sequence[float]) -> list[bool]:
    """Which processes ran in the fast state: their engine within ``SLOW_BAND`` of the fastest process's."""
    floor = min(engine_ms)
    return [e <= floor * (1 + SLOW_BAND) for e in engine_ms]


def final_latency(pairs: Sequence[tuple[float, float]], min_fast: int = MIN_FAST) -> FinalLatency:
    """The final latency of (engine ms, uncompressed ms) pairs, one per process, by the fast-state rule."""
    engine, uncompressed = (np.array(v, dtype=float) for v in zip(*pairs))
    fast = np.array(fast_state(engine))
    slow = int((~fast).sum())
    if fast.sum() >= min(min_fast, len(pairs)):
        use = fast
        rule = (f"median of the {int(fast.sum())} fast-state processes of {len(pairs)}" +
                (f"; the slow state (engine > {100 * SLOW_BAND:.0f}% above the fastest process) was seen in "
                 f"{slow}, engine +{100 * (np.median(engine[~fast]) / np.median(engine[fast]) - 1):.0f}%"
                 if slow else "; no process ran in the slow state"))
    else:
        use = np.ones(len(pairs), dtype=bool)
        rule = (f"median of all {len(pairs)} processes: only {int(fast.sum())} ran in the fast state, too few to "
                f"judge it alone")
    ratios = uncompressed / engine
    return FinalLatency(float(np.median(engine[use])), float(np.median(uncompressed[use])), engine.tolist(),
                        uncompressed.tolist(), float(np.median(ratios[use])), fast.tolist(), rule,
                        float(np.median(ratios)))


def measure_final(time_once: Callable[[], tuple[float, float]], first: tuple[float, float], rounds: int,
                  on_round: Callable[[], None] | None = None) -> FinalLatency:
    """``rounds`` processes (``first`` is the benchmark's own), more while too few ran in the fast state."""
    pairs = [first]
    min_fast = min(MIN_FAST, rounds)
    while len(pairs) < rounds or (sum(fast_state([e for e, _ in pairs])) < min_fast and len(pairs) < MAX_PROCESSES):
        pairs.append(time_once())
        if on_round:
            on_round()
    return final_latency(pairs, min_fast)


def verdict_processes(backend, target) -> int:
    """How many measurements of an exported engine a verdict takes: the target's ``[measure] final_processes``,
    else the backend's ``final_rounds``."""
    return target.final_processes or backend.final_rounds


def judge(budget: Budget, latency: FinalLatency) -> tuple[float, float, str]:
    """(budget ms, ratio to it, verdict) of a measured engine: the budget against the uncompressed model timed in
    the same processes as the engine."""
    budget_ms = budget.ms_against(latency.uncompressed_ms)
    ratio = latency.engine_ms / budget_ms
    return budget_ms, ratio, verdict(ratio) + (f" ({latency.rule})" if latency.rule else "")


def verdict(ratio: float, predicted_because: str | None = None) -> str:
    """The verdict on a latency that is ``ratio`` times the budget: measured, or predicted (and why)."""
    if predicted_because is not None:
        return (("PREDICTED to meet the budget" if ratio <= 1.0 else
                 f"PREDICTED to MISS the budget by {100 * (ratio - 1):.1f}%") + f" ({predicted_because})")
    if ratio <= 1.0:
        return "meets the budget"
    return f"MISSES the budget by {100 * (ratio - 1):.1f}%" + (f" (within measurement noise, {100 * NOISE:.0f}%)"
                                                              if ratio <= 1 + NOISE else "")
