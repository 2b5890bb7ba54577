"""A gymnasium environment that walks a network block by block, for the flat agents of ``amc`` and
``two-stage`` (trained with stable-baselines3).

Each step decides one block. The observation is AMC's layer embedding adapted to latency: position, channel
counts, the block's share of the uncompressed latency, the latency already saved, the latency still to come,
and the previous action. Before a choice is taken it is clipped, as AMC does, so that the blocks still to
come can meet the budget even at their fastest; after the last block the configuration goes through the shared
action wall and a real evaluation, whose proxy accuracy is the episode's only reward.
"""

from __future__ import annotations

from typing import Callable

import gymnasium as gym
import numpy as np

from .context import SearchContext

# An action maps a (block, action) pair to the option index it asks for.
Decoder = Callable[[int, np.ndarray], int]


class BlockEnv(gym.Env):
    """One episode = one configuration; ``decode`` turns an action into the option it asks for."""

    def __init__(self, ctx: SearchContext, action_space: gym.Space, decode: Decoder,
                 start: np.ndarray | None = None):
        super().__init__()
        self.ctx, self.decode = ctx, decode
        space = ctx.space
        self.action_space = action_space
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(7,), dtype=np.float32)
        self.start = space.full_index if start is None else np.asarray(start)
        rows = np.arange(space.n)
        self.full_ms = space.block_ms[rows, self.start]
        self.min_ms = np.where(space.valid, space.block_ms, np.inf).min(axis=1)
        self.static = np.stack([np.linspace(0.0, 1.0, space.n), space.full_width / space.full_width.max()], 1)
        self.done_searching = False
        self._prev = np.zeros(2)

    def _observation(self) -> np.ndarray:
        t = min(self.t, self.ctx.space.n - 1)
        total = self.ctx.space.uncompressed_ms
        saved = (self.full_ms[: self.t].sum() - self.spent) / total
        rest = self.full_ms[self.t:].sum() / total
        return np.array([*self.static[t], self.full_ms[t] / total, saved, rest, *self._prev], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t, self.spent = 0, 0.0
        self.x = self.start.copy()
        self._prev = np.zeros(2)
        return self._observation(), {}

    def _clip(self, b: int, k: int) -> int:
        """AMC's budget-aware clipping: keep enough latency for the remaining blocks at their fastest."""
        space = self.ctx.space
        allowed = self.ctx.budget_table_ms - space.table.fixed_ms - self.spent - self.min_ms[b + 1:].sum()
        if space.block_ms[b, k] <= allowed:
            return k
        fits = np.flatnonzero(space.valid[b] & (space.block_ms[b] <= allowed))
        if not len(fits):
            return int(np.argmin(np.where(space.valid[b], space.block_ms[b], np.inf)))
        return int(fits[np.argmax(space.block_ms[b, fits])])

    def step(self, action):
        b = self.t
        action = np.atleast_1d(np.asarray(action, dtype=float))
        k = self._clip(b, self.decode(b, action))
        self.x[b] = k
        self.spent += float(self.ctx.space.block_ms[b, k])
        self._prev = np.resize(action, 2)
        self.t += 1
        if self.t < self.ctx.space.n:
            return self._observation(), 0.0, False, False, {}
        evaluation = self.ctx.propose(self.x)
        if evaluation is None:
            self.done_searching = True
            return self._observation(), 0.0, True, False, {}
        self.done_searching = self.ctx.exhausted
        return self._observation(), float(evaluation.result.top1), True, False, {}


def ratio_to_option(ctx: SearchContext, block: int, keep: float, precision: str | None) -> int:
    """The option whose width is nearest ``keep`` x full width (removal below half the narrowest), in
    ``precision`` where the block offers it."""
    opts = ctx.space.options[block]
    full = ctx.space.full_width[block]
    narrowest = min((o.width for o in opts if o.width > 0), default=full)
    want = 0 if keep * full < narrowest / 2 and any(o.width == 0 for o in opts) else keep * full
    candidates = [k for k, o in enumerate(opts) if (o.width == 0) == (want == 0)
                  and (precision is None or o.precision == precision or o.width == 0)]
    return min(candidates or range(len(opts)), key=lambda k: abs(opts[k].width - want))


def stop_when_done(env: BlockEnv):
    """An SB3 callback that ends training once the environment has spent the evaluation budget."""
    from stable_baselines3.common.callbacks import BaseCallback

    class _Stop(BaseCallback):
        def _on_step(self) -> bool:
            return not env.done_searching

    return _Stop()
