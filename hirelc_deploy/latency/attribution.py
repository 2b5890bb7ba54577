"""From whole-network measurements to per-block latencies: the profiler apportions, end-to-end sets totals.

ONNX Runtime's profiler tells how a network's time splits between nodes, hence between blocks, but it also
inflates small kernels unevenly (by 5-30% of the total on ResNet-56). So every profiled network is also timed
end to end without the profiler, and its block shares are rescaled so that they add up to that measured time.
Numbers in a table therefore always sum to latencies that were really observed on the device.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Sequence

from .table import STEM_HEAD_PRECISION, BlockLatency, LatencyTable, precision_chain, transition_key
from hirelc_agent.timing import Timing


@dataclass(frozen=True)
class Observation:
    """One whole network: its configuration, end-to-end timing and profiler time per block and fixed part."""

    widths: tuple[int, ...]
    precisions: tuple[str, ...]
    e2e: Timing
    block_ms: tuple[float, ...]  # profiler time attributed to each block
    stem_ms: float  # profiler time of nodes outside every block, before the first block
    head_ms: float  # ... and after it

    @property
    def fixed_ms(self) -> float:
        return self.stem_ms + self.head_ms

    def scale(self, overhead_ms: float) -> float:
        """Factor that turns this network's profiler times into shares of its end-to-end latency."""
        return (self.e2e.median_ms - overhead_ms) / (sum(self.block_ms) + self.fixed_ms)


def _chain(precisions: Sequence[str]) -> list[str]:
    return [STEM_HEAD_PRECISION, *precisions, STEM_HEAD_PRECISION]


def _boundary_cost(transitions: list[dict[str, float]], widths: Sequence[int], precisions: Sequence[str]) -> float:
    chain = precision_chain(widths, precisions)
    return sum(transitions[k].get(transition_key(a, b), 0.0) for (_, a), (k, b) in zip(chain, chain[1:]) if a != b)


def _stem_head(uniform: Sequence[Observation], overhead_ms: float) -> tuple[float, float]:
    """Stem and head latency from the all-FP32 networks (which have no boundaries)."""
    stems, heads = [], []
    for obs in uniform:
        if set(obs.precisions) == {STEM_HEAD_PRECISION}:
            stems.append(obs.scale(overhead_ms) * obs.stem_ms)
            heads.append(obs.scale(overhead_ms) * obs.head_ms)
    if not stems:
        raise ValueError("profiling needs at least one all-FP32 uniform configuration")
    return statistics.median(stems), statistics.median(heads)


def _block_latencies(uniform: Sequence[Observation], fixed: float, transitions: list[dict[str, float]],
                     widths: Sequence[Sequence[int]]) -> tuple[list[dict], list[dict]]:
    """Per block: {precision: {width: [estimates]}} and the matching spreads, from uniform networks."""
    values = [dict() for _ in widths]
    spreads = [dict() for _ in widths]
    for obs in uniform:
        budget = obs.e2e.median_ms - fixed - _boundary_cost(transitions, obs.widths, obs.precisions)
        # A network whose blocks are all removed down to bare identities has no block time to rescale.
        scale = budget / sum(obs.block_ms) if sum(obs.block_ms) > 0 else 0.0
        rel_spread = obs.e2e.spread_ms / obs.e2e.median_ms
        for b, (w, p, t) in enumerate(zip(obs.widths, obs.precisions, obs.block_ms)):
            values[b].setdefault(p, {}).setdefault(w, []).append(scale * t)
            spreads[b].setdefault(p, {}).setdefault(w, []).append(scale * t * rel_spread)
    return values, spreads


def _transitions(mixed: Sequence[Observation], stem_head: tuple[float, float], overhead_ms: float,
                 lookup: "callable", n_blocks: int) -> list[dict[str, float]]:
    """Boundary costs from networks that mix precisions.

    A block's excess over its uniform-context latency is split equally between its adjacent boundaries that
    are precision changes; the stem's excess goes to boundary 0 and the head's to boundary n (ONNX Runtime
    can move a block's quantization into the stem: on ResNet-18 an INT8 first block makes the stem's MaxPool
    run in uint8, 6 ms instead of 0.25). The excesses add up to the measured end-to-end time minus the
    additive prediction, so nothing measured is lost (a block with no adjacent change keeps its excess out
    of the boundaries: it is noise around its uniform-context value).
    """
    estimates: list[dict[str, list[float]]] = [dict() for _ in range(n_blocks + 1)]
    for obs in mixed:
        scale = obs.scale(overhead_ms)
        chain = _chain(obs.precisions)
        is_change = [a != b for a, b in zip(chain, chain[1:])]
        share = [0.0] * (n_blocks + 1)
        for b in range(n_blocks):
            excess = scale * obs.block_ms[b] - lookup(b, obs.widths[b], obs.precisions[b])
            sides = [k for k in (b, b + 1) if is_change[k]]
            for k in sides:
                share[k] += excess / len(sides)
        share[0] += scale * obs.stem_ms - stem_head[0]
        share[n_blocks] += scale * obs.head_ms - stem_head[1]
        for k, changed in enumerate(is_change):
            if changed:
                estimates[k].setdefault(transition_key(chain[k], chain[k + 1]), []).append(share[k])
    return [{key: statistics.median(v) for key, v in est.items()} for est in estimates]


def _share_removed(values: list[dict], spreads: list[dict], precisions: Sequence[str]) -> None:
    """A removed block (width 0) is measured once, in FP32 (it has nothing to quantize); every precision
    gets that entry so the table stays rectangular."""
    for per_block, per_spread in zip(values, spreads):
        fp32 = per_block.get(STEM_HEAD_PRECISION, {})
        if 0 not in fp32:
            continue
        for p in precisions:
            per_block.setdefault(p, {})[0] = fp32[0]
            per_spread.setdefault(p, {})[0] = per_spread[STEM_HEAD_PRECISION][0]


def solve(uniform: Sequence[Observation], mixed: Sequence[Observation], overhead_ms: float,
          names: Sequence[str], full_widths: Sequence[int], iterations: int = 4
          ) -> tuple[float, list[BlockLatency], list[dict[str, float]]]:
    """Fixed cost, per-block latencies and boundary costs that reproduce the measured networks.

    ``uniform`` networks have one precision throughout (one per width level and precision); ``mixed`` ones
    change precision between some neighbouring blocks. Block latencies and boundary costs depend on each other (a
    uniform INT8 network still converts at the stem and the head), so they are refined a few times.
    """
    n = len(names)
    widths = [sorted({obs.widths[b] for obs in uniform}) for b in range(n)]
    precisions = sorted({p for obs in uniform for p in obs.precisions})
    stem_head = _stem_head(uniform, overhead_ms)
    fixed = overhead_ms + sum(stem_head)
    transitions: list[dict[str, float]] = [dict() for _ in range(n + 1)]
    blocks: list[BlockLatency] = []
    for _ in range(iterations):
        values, spreads = _block_latencies(uniform, fixed, transitions, widths)
        _share_removed(values, spreads, precisions)
        blocks = [
            BlockLatency(
                name=names[b],
                full_width=full_widths[b],
                widths=widths[b],
                latency_ms={p: [statistics.median(v[w]) for w in widths[b]] for p, v in values[b].items()},
                spread_ms={p: [max(s[w]) for w in widths[b]] for p, s in spreads[b].items()},
            )
            for b in range(n)
        ]
        transitions = _transitions(mixed, stem_head, overhead_ms, lambda b, w, p: blocks[b].lookup(w, p), n)
    return fixed, blocks, transitions


def isolation_factor(table: LatencyTable, measured: Sequence[tuple[Sequence[int], Sequence[str], float]]) -> float:
    """Fraction of its boundary costs an isolated block saves, fitted to networks that alternate precision.

    A block whose two neighbours both run another precision (``fp32 int8 fp32``) converts more cheaply than
    two boundaries of longer runs would: ONNX Runtime folds part of the quantize/dequantize work into the
    block's own kernels. One least-squares factor over the measured alternating networks captures it.
    """
    saved, observed = [], []
    for widths, precisions, e2e in measured:
        saving = table.isolated_saving(precisions, widths)
        without_isolation = table.predict(widths, precisions) + table.isolated_block_factor * saving
        saved.append(saving)
        observed.append(without_isolation - e2e)
    denom = sum(s * s for s in saved)
    return sum(s * o for s, o in zip(saved, observed)) / denom if denom > 0 else 0.0
