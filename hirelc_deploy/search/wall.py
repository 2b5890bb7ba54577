"""The action wall: whatever an agent proposes, what the search evaluates and returns fits the budget.

As in AMC and HAQ, the budget is enforced after the agents act rather than hoped for through the reward.
A configuration over budget is repaired by single-block moves, each time the one that costs least damage per
millisecond saved (so the least sensitive blocks shrink first; a move that saves time *and* loses less, such
as 12 -> 16 channels where 12 misses the SIMD width, goes first of all). If no single move saves time (two
neighbouring blocks may need to change precision together), blocks are set to their option in the fastest
configuration, least sensitive first, until the budget is met; that always terminates feasible because the
fastest configuration itself fits any budget ``budget.Budget.resolve`` accepts.
"""

from __future__ import annotations

import numpy as np

from .prior import DamageModel
from .space import SearchSpace

_EPS = 1e-9


def repair(space: SearchSpace, prior: DamageModel, x: np.ndarray, budget_ms: float) -> np.ndarray:
    """A configuration within ``budget_ms`` derived from ``x`` (returned unchanged if it already fits)."""
    x = np.array(x, dtype=np.int64)
    if budget_ms < space.fastest_ms - _EPS:
        raise ValueError(f"budget {budget_ms} ms is below the fastest configuration, {space.fastest_ms} ms")
    latency = float(space.latency(x[None])[0])
    blocks, options = np.nonzero(space.valid)
    while latency > budget_ms + _EPS:
        moves = np.repeat(x[None], len(blocks), axis=0)
        moves[np.arange(len(blocks)), blocks] = options
        saved = latency - space.latency(moves)
        useful = saved > _EPS
        if not useful.any():
            return _snap_to_fastest(space, prior, x, budget_ms)
        extra = prior.damage[blocks, options] - prior.damage[blocks, x[blocks]]
        ratio = np.where(useful, extra / np.where(useful, saved, 1.0), np.inf)
        best = int(np.argmin(ratio))
        x[blocks[best]] = options[best]
        latency -= float(saved[best])
    return x


def _snap_to_fastest(space: SearchSpace, prior: DamageModel, x: np.ndarray, budget_ms: float) -> np.ndarray:
    for b in np.argsort(prior.relative, kind="stable"):
        x[b] = space.fastest_index[b]
        if space.latency(x[None])[0] <= budget_ms + _EPS:
            return x
    return x


def repair_batch(space: SearchSpace, prior: DamageModel, x: np.ndarray, budget_ms: float) -> np.ndarray:
    """``repair`` applied to every row that is over budget."""
    x = np.array(x, dtype=np.int64)
    over = np.flatnonzero(space.latency(x) > budget_ms + _EPS)
    for i in over:
        x[i] = repair(space, prior, x[i], budget_ms)
    return x
