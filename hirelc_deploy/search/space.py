"""The search space a latency table offers: per block, the (inner width, precision) options and their cost.

A configuration is an array of option indices, one per block. ``SearchSpace.latency`` predicts whole batches
of configurations at once with exactly the model of ``LatencyTable.predict`` (block entries, boundary
conversions along the precision chain that skips removed blocks, the isolated-block saving), so agents can
score thousands of imagined configurations per second; a property test keeps the two in agreement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import InputError
from ..latency import LatencyTable
from ..latency.table import STEM_HEAD_PRECISION, transition_key
from ..policy import Policy
from ..precision import Precision


def nearest_widths(table: LatencyTable, fraction: float) -> list[int]:
    """Per block, the non-zero table width closest to ``fraction`` of the block's full width."""
    return [min((w for w in b.widths if w > 0), key=lambda w: abs(w - fraction * b.full_width))
            for b in table.blocks]


def plan_policy(table: LatencyTable, widths: Sequence[int], precisions: Sequence[str], **notes) -> Policy:
    """A policy with the latency the table predicts for it (labelled with the table's kind)."""
    return Policy.from_lists(
        table.model, table.target, [b.name for b in table.blocks], widths, precisions,
        predicted_latency_ms=table.predict(widths, precisions), latency_kind=table.kind, notes=dict(notes),
    )


@dataclass(frozen=True)
class Option:
    """One choice for one block."""

    width: int
    precision: str
    latency_ms: float


class SearchSpace:
    """Options per block from a latency table, restricted to ``precisions`` and (optionally) no removal.

    Arrays are padded to the largest option count; ``valid[b, k]`` marks real options. A removed block (width 0)
    has one option, recorded in FP32. Options are ordered by width, then by the table's precision order.
    """

    def __init__(self, table: LatencyTable, precisions: Sequence[str] | None = None, allow_removal: bool = True):
        self.table = table
        self.precisions = [p for p in table.precisions if precisions is None or p in precisions]
        if not self.precisions:
            raise InputError(f"none of the precisions {list(precisions or [])} is in the latency table "
                             f"({', '.join(table.precisions)})")
        self.options: list[list[Option]] = []
        for block in table.blocks:
            opts = [Option(w, p, block.lookup(w, p)) for w in block.widths if w > 0 for p in self.precisions]
            if allow_removal and 0 in block.widths:
                opts.insert(0, Option(0, STEM_HEAD_PRECISION, block.lookup(0, STEM_HEAD_PRECISION)))
            self.options.append(opts)
        self.n = len(self.options)
        self.k = max(len(o) for o in self.options)
        self.valid = np.zeros((self.n, self.k), dtype=bool)
        self.block_ms = np.zeros((self.n, self.k))
        self.width = np.zeros((self.n, self.k), dtype=np.int64)
        self.full_width = np.array([b.full_width for b in table.blocks])
        codes = {p: i for i, p in enumerate(table.precisions)}
        self._fp32 = codes.get(STEM_HEAD_PRECISION, 0)
        self.code = np.full((self.n, self.k), self._fp32, dtype=np.int64)
        for b, opts in enumerate(self.options):
            for k, o in enumerate(opts):
                self.valid[b, k] = True
                self.block_ms[b, k] = o.latency_ms
                self.width[b, k] = o.width
                self.code[b, k] = codes[o.precision]
        # Padding options are never chosen; give them an infinite cost so any accidental use shows.
        self.block_ms[~self.valid] = np.inf
        # Removed blocks are recorded in FP32, so this marks exactly the kept blocks running INT8.
        self.int8 = (self.valid & (self.code == codes[Precision.INT8]) if Precision.INT8 in codes
                     else np.zeros_like(self.valid))
        p = len(table.precisions)
        self.transition = np.zeros((self.n + 1, p, p))
        for k, costs in enumerate(table.transitions_ms):
            for a, i in codes.items():
                for b, j in codes.items():
                    if a != b:
                        self.transition[k, i, j] = costs.get(transition_key(a, b), 0.0)
        self.full_index = np.array([self.index(b, blk.full_width, STEM_HEAD_PRECISION if STEM_HEAD_PRECISION in
                                                self.precisions else self.precisions[0])
                                    for b, blk in enumerate(table.blocks)])
        self.fastest_index = self._fastest()
        self.fastest_ms = float(self.latency(self.fastest_index[None])[0])
        self.uncompressed_ms = float(self.latency(self.full_index[None])[0])

    def index(self, block: int, width: int, precision: str) -> int:
        """Option index of (width, precision) in ``block``; a removed block's precision is ignored."""
        for k, o in enumerate(self.options[block]):
            if o.width == width and (o.precision == precision or width == 0):
                return k
        raise InputError(f"block {self.table.blocks[block].name}: ({width}, {precision}) is not an option of "
                         "the search space")

    def encode(self, widths: Sequence[int], precisions: Sequence[str]) -> np.ndarray:
        """Option indices of a configuration given as widths and precisions."""
        return np.array([self.index(b, w, p) for b, (w, p) in enumerate(zip(widths, precisions))])

    def decode(self, x: Sequence[int]) -> tuple[list[int], list[str]]:
        """(widths, precisions) of a configuration given as option indices."""
        chosen = [self.options[b][int(k)] for b, k in enumerate(x)]
        return [o.width for o in chosen], [o.precision for o in chosen]

    def policy(self, x: Sequence[int], **notes) -> Policy:
        """The configuration as a Policy with its predicted latency."""
        widths, precisions = self.decode(x)
        return plan_policy(self.table, widths, precisions, **notes)

    def latency(self, x: np.ndarray) -> np.ndarray:
        """Predicted latency (ms) of each row of ``x`` (configurations as option indices, shape (B, n))."""
        x = np.asarray(x)
        rows = np.arange(self.n)
        total = self.table.fixed_ms + self.block_ms[rows, x].sum(axis=1)
        batch = x.shape[0]
        kept = np.ones((batch, self.n + 2), dtype=bool)
        kept[:, 1:-1] = self.width[rows, x] > 0
        code = np.full((batch, self.n + 2), self._fp32)
        code[:, 1:-1] = self.code[rows, x]
        # Position j of the extended chain (stem, blocks, head) is entered through boundary j - 1 from the
        # last kept position before it.
        positions = np.where(kept, np.arange(self.n + 2), -1)
        last_kept = np.maximum.accumulate(positions, axis=1)
        prev = last_kept[:, :-1]
        entering = self.transition[np.arange(self.n + 1), code[np.arange(batch)[:, None], prev], code[:, 1:]]
        entering = np.where(kept[:, 1:], entering, 0.0)
        total += entering.sum(axis=1)
        if self.table.isolated_block_factor:
            total -= self.table.isolated_block_factor * self._isolated(entering, kept)
        return total

    def _isolated(self, entering: np.ndarray, kept: np.ndarray) -> np.ndarray:
        """Per row: sum over kept blocks whose entering and leaving conversions both cost, of their mean."""
        n = self.n
        # Leaving cost of kept block j = entering cost of the next kept position after it (a block or the head).
        positions = np.where(kept[:, 1:], np.arange(1, n + 2), n + 2)
        next_kept = np.minimum.accumulate(positions[:, ::-1], axis=1)[:, ::-1]
        after = next_kept[:, 1:]  # for blocks 1..n: next kept position strictly after
        leaving = np.take_along_axis(entering, after - 1, axis=1)
        into = entering[:, :n]
        both = kept[:, 1:-1] & (into != 0) & (leaving != 0)
        return np.where(both, (into + leaving) / 2, 0.0).sum(axis=1)

    def _fastest(self) -> np.ndarray:
        """Fastest configuration by dynamic programming over the last kept block's precision.

        The isolated-block saving is left out of the recursion (it couples three neighbours); the result's
        exact latency is what ``fastest_ms`` reports, and the action wall falls back to this configuration.
        """
        p = self.transition.shape[1]
        cost = np.full(p, np.inf)
        cost[self._fp32] = 0.0
        choice = []
        for b in range(self.n):
            new = np.full(p, np.inf)
            pick = np.zeros((p, 2), dtype=np.int64)  # per new state: (option, previous state)
            for k in np.flatnonzero(self.valid[b]):
                for s in range(p):
                    if not np.isfinite(cost[s]):
                        continue
                    if self.width[b, k] == 0:
                        t, value = s, cost[s] + self.block_ms[b, k]
                    else:
                        t = self.code[b, k]
                        value = cost[s] + self.block_ms[b, k] + self.transition[b, s, t]
                    if value < new[t]:
                        new[t], pick[t] = value, (k, s)
            choice.append(pick)
            cost = new
        state = int(np.argmin(cost + self.transition[self.n, :, self._fp32]))
        x = np.zeros(self.n, dtype=np.int64)
        for b in range(self.n - 1, -1, -1):
            x[b], state = choice[b][state]
        return x

    def random(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """``count`` configurations with every block's option drawn uniformly."""
        counts = self.valid.sum(axis=1)
        return (rng.random((count, self.n)) * counts).astype(np.int64)
