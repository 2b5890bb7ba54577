"""``two-stage``: a pruning agent first, then a precision agent (after Zhan et al.'s two-stage DRL), both
PPO from stable-baselines3 on the block environment.

Stage 1 spends half of the evaluations choosing a keep ratio per block with every block in the target's
fastest low precision (quantization is known to follow, so pruning is planned against the quantized
latency). Stage 2 spends the rest choosing a precision per block for the best widths found; a slower
precision that would break the budget is clipped back by the environment, and the shared wall catches the
rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from ..precision import Precision
from .block_env import BlockEnv, ratio_to_option, stop_when_done
from .context import SearchContext


@dataclass(frozen=True)
class TwoStageSettings:
    episodes_per_update: int = 4
    learning_rate: float = 3e-3


def _ppo(env: BlockEnv, ctx: SearchContext, settings: TwoStageSettings, stop_after: int) -> None:
    from stable_baselines3 import PPO

    steps = settings.episodes_per_update * ctx.space.n
    model = PPO("MlpPolicy", env, n_steps=steps, batch_size=ctx.space.n, n_epochs=4, gamma=1.0,
                learning_rate=settings.learning_rate, policy_kwargs={"net_arch": [64, 64]}, seed=ctx.seed,
                device="cpu", verbose=0)
    env.stop_after = stop_after
    model.learn(total_timesteps=10 * ctx.evals * ctx.space.n, callback=stop_when_done(env))


class _StagedEnv(BlockEnv):
    """Ends its stage once the search has spent ``stop_after`` evaluations."""

    stop_after = 0

    def step(self, action):
        out = super().step(action)
        if len(self.ctx.history) >= self.stop_after:
            self.done_searching = True
        return out


def search(ctx: SearchContext, settings: TwoStageSettings = TwoStageSettings()) -> None:
    """Pruning agent for half the evaluations, then a precision agent for the rest."""
    precisions = ctx.space.precisions
    low = next((p for p in precisions if p != Precision.FP32), precisions[0])

    def prune(block: int, action: np.ndarray) -> int:
        return ratio_to_option(ctx, block, float(np.clip((action[0] + 1) / 2, 0.0, 1.0)), low)

    env = _StagedEnv(ctx, gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32), prune)
    _ppo(env, ctx, settings, stop_after=max(1, ctx.evals // 2))
    if ctx.exhausted or len(precisions) == 1:
        return
    widths = ctx.best.widths

    def precision(block: int, action: np.ndarray) -> int:
        wanted = precisions[int(action[0])]
        return ctx.space.index(block, widths[block], wanted)

    start = ctx.space.encode(widths, ctx.best.precisions)
    env = _StagedEnv(ctx, gym.spaces.Discrete(len(precisions)), precision, start=start)
    _ppo(env, ctx, settings, stop_after=ctx.evals)
