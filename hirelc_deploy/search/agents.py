"""HiReLC's two levels of agents, and the features they see.

* The **coordinator** looks at every block (Fisher sensitivity, its share of the uncompressed latency, the
  latency range the table allows it, what the current best policy gives it) and at the global state (budget,
  slack, last accuracy proxy, evaluations used), and allocates the latency budget across blocks. Its action is
  a Gaussian vector of per-block log-multipliers of the blocks' Fisher damage; the budget is then allocated by
  the greedy rule of the action wall run on the re-weighted damage (shrink, from the uncompressed model, where
  the least weighted damage buys the most milliseconds until the budget is met). The allocation therefore
  always spends the budget, and a zero action is exactly the Fisher-greedy allocation.
* The **block agent** is one network shared by all blocks (block and option features are its input, so the
  method scales to deep networks): for each block it scores every option the table offers, masks the ones
  over the block's allocation, and samples one.

Both start from the Fisher prior: output layers are zero-initialised, and the block agent's logits are offset
by ``-damage / temperature`` so it starts by taking the least damaging option that fits its allocation. The
untrained hierarchy therefore proposes the Fisher-greedy policy, and learning only has to improve on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Normal

from ..precision import Precision
from .prior import DamageModel
from .space import SearchSpace


def _mlp(inputs: int, hidden: int) -> nn.Sequential:
    net = nn.Sequential(nn.Linear(inputs, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                        nn.Linear(hidden, 1))
    nn.init.zeros_(net[-1].weight)
    nn.init.zeros_(net[-1].bias)
    return net


class Coordinator(nn.Module):
    """Per-block damage log-multipliers from block and global features (parameters shared across blocks)."""

    def __init__(self, block_features: int, global_features: int, hidden: int = 64, std: float = 2.0):
        super().__init__()
        self.net = _mlp(block_features + global_features, hidden)
        self.log_std = nn.Parameter(torch.tensor(float(np.log(std))))

    def forward(self, blocks: torch.Tensor, glob: torch.Tensor) -> Normal:
        inputs = torch.cat([blocks, glob.expand(blocks.shape[0], -1)], dim=1)
        return Normal(self.net(inputs).squeeze(-1), self.log_std.exp())


class BlockAgent(nn.Module):
    """Option logits for every block from option features (parameters shared across blocks)."""

    def __init__(self, option_features: int, hidden: int = 64):
        super().__init__()
        self.net = _mlp(option_features, hidden)

    def forward(self, options: torch.Tensor, prior: torch.Tensor, allowed: torch.Tensor) -> Categorical:
        logits = prior + self.net(options).squeeze(-1)
        return Categorical(logits=logits.masked_fill(~allowed, -1e9))


@dataclass
class Episodes:
    """A batch of sampled hierarchical decisions and their log-probabilities."""

    options: np.ndarray  # (B, n) chosen option per block, before the action wall
    log_prob: torch.Tensor  # (B,)
    entropy: torch.Tensor  # (B,)


class Features:
    """The fixed per-block and per-option quantities the agents see, from the space and the prior."""

    def __init__(self, space: SearchSpace, prior: DamageModel, budget_ms: float, temperature: float):
        self.space, self.budget_ms = space, budget_ms
        total = space.uncompressed_ms
        lat = np.where(space.valid, space.block_ms, np.nan)
        self.min_ms = np.nanmin(lat, axis=1)
        self.max_ms = np.nanmax(lat, axis=1)
        full = space.block_ms[np.arange(space.n), space.full_index]
        self.slack = max(budget_ms - space.table.fixed_ms - self.min_ms.sum(), 1e-9)
        position = np.linspace(0.0, 1.0, space.n)
        self.static = np.stack([prior.relative, full / total, self.min_ms / total, self.max_ms / total, position], 1)
        int8 = space.int8.astype(float)
        width = space.width / space.full_width[:, None]
        damage = np.where(space.valid, prior.normalized, 0.0)
        self.option_static = torch.tensor(np.stack([
            width, int8, (space.width == 0).astype(float), damage,
            np.where(space.valid, space.block_ms, 0.0) / total,
            np.repeat(prior.relative[:, None], space.k, 1), np.repeat(position[:, None], space.k, 1),
        ], -1), dtype=torch.float32)
        self.option_prior = torch.tensor(np.where(space.valid, -damage / temperature, 0.0), dtype=torch.float32)
        self.block_ms = torch.tensor(np.where(space.valid, space.block_ms, np.inf), dtype=torch.float32)
        self.valid = torch.tensor(space.valid)
        self.damage = prior.damage
        self.fastest = self.block_ms == self.block_ms.min(dim=-1, keepdim=True).values
        self.total = total

    def block_features(self, incumbent: np.ndarray) -> torch.Tensor:
        """Static block features plus what the incumbent policy gives each block (its current allocation)."""
        rows = np.arange(self.space.n)
        current = np.stack([self.space.block_ms[rows, incumbent] / self.total,
                            self.space.width[rows, incumbent] / self.space.full_width,
                            [self.space.options[b][k].precision == Precision.INT8 for b, k in enumerate(incumbent)]], 1)
        return torch.tensor(np.hstack([self.static, current]), dtype=torch.float32)

    def global_features(self, incumbent_top1: float, used: float) -> torch.Tensor:
        return torch.tensor([self.budget_ms / self.total, self.slack / self.total, incumbent_top1, used],
                            dtype=torch.float32)

    def allocate(self, log_multipliers: np.ndarray) -> np.ndarray:
        """Option per block chosen by the wall's greedy rule on damage re-weighted per block, for each row of
        ``log_multipliers`` at once. Precision conversions are left to the exact wall afterwards, so this
        only has to compare block latencies, which keeps it vectorised over the whole batch."""
        space = self.space
        damage = self.damage[None] * np.exp(log_multipliers)[:, :, None]
        x = np.repeat(space.full_index[None], len(log_multipliers), axis=0)
        rows, blocks = np.arange(len(x))[:, None], np.arange(space.n)[None]
        target = self.budget_ms - space.table.fixed_ms
        while True:
            current = space.block_ms[blocks, x]
            over = current.sum(1) > target + 1e-12
            if not over.any():
                return x
            saved = current[:, :, None] - space.block_ms[None]
            extra = damage - np.take_along_axis(damage, x[:, :, None], 2)
            ratio = np.where(saved > 1e-12, extra / np.where(saved > 1e-12, saved, 1.0), np.inf)
            flat = ratio.reshape(len(x), -1)
            best = flat.argmin(1)
            movable = over & np.isfinite(flat[np.arange(len(x)), best])
            if not movable.any():
                return x
            b, k = np.divmod(best[movable], space.k)
            x[rows[movable, 0], b] = k

    def option_features(self, allocation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Option features given each block's allocation, and the mask of options that fit in it."""
        headroom = allocation.unsqueeze(-1) - self.block_ms
        allowed = self.valid & ((headroom >= -1e-9) | self.fastest)
        room = torch.where(allowed, headroom, torch.zeros_like(headroom)).unsqueeze(-1) / self.total
        static = self.option_static.expand(*allocation.shape[:-1], -1, -1, -1)
        return torch.cat([static, room], -1), allowed

    @property
    def option_count(self) -> int:
        return self.option_static.shape[-1] + 1

    @property
    def block_count(self) -> int:
        return self.static.shape[1] + 3


def sample(coordinator: Coordinator, agent: BlockAgent, features: Features, incumbent: np.ndarray,
           glob: torch.Tensor, count: int, generator: torch.Generator) -> Episodes:
    """Sample ``count`` hierarchical episodes."""
    allocation_dist = coordinator(features.block_features(incumbent), glob)
    noise = torch.randn((count, features.space.n), generator=generator)
    action = (allocation_dist.mean + allocation_dist.stddev * noise).detach()
    log_prob = allocation_dist.log_prob(action).sum(-1)
    allocated = features.allocate(action.numpy().astype(np.float64))
    allocation = features.block_ms[torch.arange(features.space.n), torch.as_tensor(allocated)]
    option_feats, allowed = features.option_features(allocation)
    choice_dist = agent(option_feats, features.option_prior.expand_as(allowed), allowed)
    probs = choice_dist.probs
    chosen = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator).view(probs.shape[:-1])
    log_prob = log_prob + choice_dist.log_prob(chosen).sum(-1)
    entropy = choice_dist.entropy().sum(-1) + allocation_dist.entropy().sum(-1)
    return Episodes(chosen.numpy(), log_prob, entropy)
