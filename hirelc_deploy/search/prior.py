"""What each option is expected to cost in accuracy, before anything is evaluated: the Fisher prior.

``damage[b, k]`` is the second-order estimate of the loss increase of giving block b option k: the Fisher
saliency of the inner channels the option removes (the least important ones go first, as pruning removes
them), all of them for a removed block, plus the block's INT8 weight-rounding saliency (scaled by the kept
width) when the option runs in INT8. The estimate is crude for large removals; the search uses it to rank
moves (the action wall), to initialise its agents and as a feature of its surrogate, and learns the rest
from real evaluations.
"""

from __future__ import annotations

import numpy as np

from ..precision import Precision
from ..sensitivity import Sensitivity
from .space import SearchSpace


def _removal_cost(groups: list[list[float]], full: int, width: int) -> float:
    return float(sum(sum(sorted(g)[: max(0, full - width)]) for g in groups))


class DamageModel:
    """Per-option damage estimates for a search space, from a model's Fisher sensitivity.

    ``int8_weight`` and ``removal_weight`` scale the two parts of the estimate the Fisher approximation is
    least sure of (INT8 rounding, and removing a whole block), for strategies that sweep them.
    """

    def __init__(self, space: SearchSpace, sensitivity: Sensitivity, int8_weight: float = 1.0,
                 removal_weight: float = 1.0):
        if len(sensitivity.blocks) != space.n:
            raise ValueError(f"sensitivity has {len(sensitivity.blocks)} blocks, the search space {space.n}")
        self.space, self.sensitivity = space, sensitivity
        self.damage = np.zeros((space.n, space.k))
        for b, (row, options) in enumerate(zip(sensitivity.blocks, space.options)):
            full = int(space.full_width[b])
            for k, o in enumerate(options):
                cost = _removal_cost(row.channel_fisher, full, o.width)
                if o.width == 0:
                    cost *= removal_weight
                elif o.precision == Precision.INT8:
                    cost += int8_weight * row.int8_saliency * o.width / full
                self.damage[b, k] = cost
        self.damage[~space.valid] = np.inf
        finite = self.damage[space.valid]
        # One unit = the damage of the most damaging option; agents and surrogate see values in [0, 1].
        self.scale = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        self.relative = np.asarray([row.relative for row in sensitivity.blocks])

    def weighted(self, int8_weight: float, removal_weight: float) -> "DamageModel":
        """The same prior with INT8 rounding and block removal weighted differently."""
        return DamageModel(self.space, self.sensitivity, int8_weight, removal_weight)

    @property
    def normalized(self) -> np.ndarray:
        """Damage divided by the largest option damage (padding options stay infinite)."""
        return self.damage / self.scale

    def total(self, x: np.ndarray) -> np.ndarray:
        """Summed normalised damage of each configuration (rows of option indices)."""
        x = np.asarray(x)
        return self.normalized[np.arange(x.shape[1]), x].sum(axis=1)

    def best_within(self, allocation_ms: np.ndarray) -> np.ndarray:
        """Per block, the least damaging option whose latency fits the block's allocation (the fastest
        option where none fits)."""
        space = self.space
        fits = space.valid & (space.block_ms <= np.asarray(allocation_ms)[:, None] + 1e-12)
        fastest = np.argmin(np.where(space.valid, space.block_ms, np.inf), axis=1)
        choice = np.argmin(np.where(fits, self.damage, np.inf), axis=1)
        return np.where(fits.any(axis=1), choice, fastest)
