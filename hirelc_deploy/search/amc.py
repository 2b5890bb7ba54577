"""``amc``: one flat agent stepping block by block, as in AMC (He et al. 2018), with DDPG from
stable-baselines3.

The agent's continuous action per block is a keep ratio (AMC's pruning ratio) and, where the target offers
several precisions, a second value choosing the precision (INT8 above 0.5), as HAQ adds bit widths to the
same agent. The environment clips each action to what the budget still allows (AMC's constrained action
space) and the shared action wall catches what clipping cannot see (precision conversions). As in AMC the
first quarter of the episodes explore at random before the critic is trained, with Gaussian exploration noise
afterwards; every episode costs one real evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from ..precision import Precision
from .block_env import BlockEnv, ratio_to_option, stop_when_done
from .context import SearchContext


@dataclass(frozen=True)
class AmcSettings:
    warmup_fraction: float = 0.25  # share of the episodes with random actions before learning starts
    noise: float = 0.3
    learning_rate: float = 1e-3


def search(ctx: SearchContext, settings: AmcSettings = AmcSettings()) -> None:
    """Train DDPG on the block environment until the evaluation budget is spent."""
    from stable_baselines3 import DDPG
    from stable_baselines3.common.noise import NormalActionNoise

    low = [p for p in ctx.space.precisions if p != Precision.FP32]
    dims = 2 if low and Precision.FP32 in ctx.space.precisions else 1

    def decode(block: int, action: np.ndarray) -> int:
        keep = float(np.clip((action[0] + 1) / 2, 0.0, 1.0))
        precision = None if dims == 1 else (low[0] if action[1] > 0 else Precision.FP32)
        return ratio_to_option(ctx, block, keep, precision)

    env = BlockEnv(ctx, gym.spaces.Box(-1.0, 1.0, shape=(dims,), dtype=np.float32), decode)
    warmup = max(1, int(settings.warmup_fraction * ctx.evals)) * ctx.space.n
    model = DDPG("MlpPolicy", env, learning_rate=settings.learning_rate, learning_starts=warmup, gamma=1.0,
                 batch_size=64, train_freq=(1, "episode"), gradient_steps=-1,
                 action_noise=NormalActionNoise(np.zeros(dims), settings.noise * np.ones(dims)),
                 policy_kwargs={"net_arch": [64, 64]}, seed=ctx.seed, device="cpu", verbose=0)
    model.learn(total_timesteps=10 * ctx.evals * ctx.space.n + warmup, callback=stop_when_done(env))
