"""``hirelc``: hierarchical RL under a latency budget, with a surrogate screening what gets evaluated.

Per round:

1. Fit the surrogate (``surrogate.py``) on every candidate evaluated so far.
2. Train the coordinator and the block agents (``agents.py``) by policy gradient on *imagined* episodes: the
   reward of a sampled policy is the surrogate's predicted proxy accuracy, minus a penalty for predicted
   latency over the budget (the agents learn to respect it; the action wall enforces it on everything real).
3. Sample a pool of proposals from the agents, put them through the action wall, drop the ones already
   evaluated, and spend real evaluations on the few with the highest upper confidence bound. When the agents
   have converged and their pool holds too few new configurations, it is topped up with random one-to-three
   block changes of the best evaluated ones (screened the same way), so every round spends its evaluations
   and the search uses its whole evaluation budget; it ends early only when no neighbour of the best ones is
   new either.

The strategy's own computation is kept small next to the evaluations it chooses (``tools/bench_search.py``
reports the share): a round trains for a few imagined steps on a small batch, the agents carrying over what
they learnt from round to round. Before, 25 steps of 64 episodes a round, with rounds that often found no new
configuration, took ~5.6 s of strategy time per evaluation on ResNet-56's table, more than the evaluation.

The first evaluation is the agents' untrained choice, which starts from the Fisher prior (close to the
Fisher-greedy policy). Without a surrogate (``use_surrogate=False``, or before it has enough points) the
agents are trained on real rewards alone: every sampled episode is evaluated. That cold start works but is
slow, which is why imagined episodes exist.

Why an in-house policy gradient rather than stable-baselines3: the two levels act at different granularity
(one allocation vector per episode, then one masked choice per block) and are trained jointly from one
reward, which SB3's single-policy, fixed-action-space algorithms do not express (PPO has no action masks);
and the imagined episodes are sampled and scored hundreds at a time as tensors, where SB3 would step one
Python environment transition at a time. The seed methods ``amc`` and ``two-stage``, whose agents are flat,
use SB3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .agents import BlockAgent, Coordinator, Episodes, Features, sample
from .context import SearchContext
from .surrogate import Surrogate
from .wall import repair_batch


@dataclass(frozen=True)
class HirelcSettings:
    """Hyper-parameters of the hierarchical search (defaults used by ``hirelc compress``)."""

    use_surrogate: bool = True
    proposals_per_round: int = 4
    imagined_batch: int = 32
    imagined_steps: int = 8
    pool: int = 256
    elite: int = 8  # best evaluated configurations whose neighbours top up a pool with too few new ones
    ucb: float = 1.0
    lr: float = 3e-3
    entropy: float = 1e-3
    temperature: float = 0.001  # block-agent prior: logits -damage / temperature (damage normalised to [0, 1])
    over_budget_penalty: float = 5.0  # imagined reward lost per unit of relative overshoot
    min_distance: int = 2  # blocks in which two proposals of one round must differ


class _Learner:
    """The two agents, their optimiser and the policy-gradient update."""

    def __init__(self, ctx: SearchContext, settings: HirelcSettings):
        self.ctx, self.settings = ctx, settings
        torch.manual_seed(ctx.seed)
        self.generator = torch.Generator().manual_seed(ctx.seed)
        self.features = Features(ctx.space, ctx.prior, ctx.budget_table_ms, settings.temperature)
        self.anchor = ctx.wall(ctx.space.full_index)
        self.coordinator = Coordinator(self.features.block_count, 4)
        self.agent = BlockAgent(self.features.option_count)
        params = [*self.coordinator.parameters(), *self.agent.parameters()]
        self.optimizer = torch.optim.Adam(params, lr=settings.lr)

    def sample(self, count: int) -> Episodes:
        """Episodes around the incumbent: the best policy evaluated so far (the Fisher-greedy anchor before
        anything is evaluated)."""
        best = self.ctx.best
        incumbent = self.anchor if best is None else np.array(best.options)
        glob = self.features.global_features(0.0 if best is None else best.result.top1,
                                             len(self.ctx.history) / self.ctx.evals)
        return sample(self.coordinator, self.agent, self.features, incumbent, glob, count, self.generator)

    def update(self, episodes: Episodes, rewards: np.ndarray) -> None:
        advantage = torch.tensor(rewards - rewards.mean(), dtype=torch.float32)
        advantage = advantage / (advantage.std() + 1e-8) if len(rewards) > 1 else advantage
        loss = -(advantage * episodes.log_prob).mean() - self.settings.entropy * episodes.entropy.mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()


class _Critic:
    """What imagined episodes and screening are scored by: the surrogate once it is fitted, the Fisher prior
    (minus total damage, no spread) before that or when the surrogate is switched off."""

    def __init__(self, ctx: SearchContext, settings: HirelcSettings):
        self.ctx, self.settings = ctx, settings
        self.surrogate = Surrogate(ctx.space, ctx.prior)

    def refit(self) -> None:
        if self.settings.use_surrogate:
            self.surrogate.fit(*self.ctx.scores())

    def optimistic(self, options: np.ndarray) -> np.ndarray:
        if self.surrogate.ready:
            mean, spread = self.surrogate.predict(options)
            return mean + self.settings.ucb * spread
        return -self.ctx.prior.total(options)

    def imagined_rewards(self, options: np.ndarray) -> np.ndarray:
        """Optimistic value minus a penalty for predicted latency over the budget."""
        overshoot = np.maximum(self.ctx.space.latency(options) / self.ctx.budget_table_ms - 1.0, 0.0)
        if self.surrogate.ready:
            value, scale = self.optimistic(options), 1.0
        else:
            damage = self.ctx.prior.total(options)
            value, scale = -damage, damage.std() + 1e-9
        return value - self.settings.over_budget_penalty * scale * overshoot


def _fresh(ctx: SearchContext, candidates: np.ndarray) -> np.ndarray:
    """The distinct configurations ``candidates`` give after the wall that this search has not evaluated."""
    walled = repair_batch(ctx.space, ctx.prior, np.unique(candidates, axis=0), ctx.budget_table_ms)
    fresh = [x for x in np.unique(walled, axis=0) if ctx.known(x) is None]
    return np.array(fresh, dtype=np.int64).reshape(-1, ctx.space.n)


def _neighbours(ctx: SearchContext, settings: HirelcSettings, count: int) -> np.ndarray:
    """``count`` random changes of one to three blocks each to the ``elite`` best evaluated configurations."""
    elite = np.array([e.options for e in sorted(ctx.history, key=lambda e: e.result.key(), reverse=True)
                      [:settings.elite]])
    x = elite[ctx.rng.integers(len(elite), size=count)]
    options = ctx.space.valid.sum(axis=1)  # valid options come first in every block's row
    changes = ctx.rng.integers(1, 4, size=count)
    for change in range(3):
        rows = np.flatnonzero(changes > change)
        blocks = ctx.rng.integers(ctx.space.n, size=len(rows))
        x[rows, blocks] = (ctx.rng.random(len(rows)) * options[blocks]).astype(np.int64)
    return x


def _screen(ctx: SearchContext, learner: _Learner, critic: _Critic, settings: HirelcSettings) -> list:
    """The proposals worth a real evaluation: the highest optimistic value among new, feasible ones, each
    differing from the others picked in at least ``min_distance`` blocks; the agents' own proposals first,
    neighbours of the best evaluated configurations when those are too few."""
    with torch.no_grad():
        fresh = _fresh(ctx, learner.sample(settings.pool).options)
    wanted = min(settings.proposals_per_round, ctx.remaining)
    if len(fresh) < wanted and ctx.history:
        fresh = np.unique(np.vstack([fresh, _fresh(ctx, _neighbours(ctx, settings, settings.pool))]), axis=0)
    if not len(fresh):
        return []
    picks: list[np.ndarray] = []
    for i in np.argsort(-critic.optimistic(fresh), kind="stable"):
        if all((fresh[i] != p).sum() >= settings.min_distance for p in picks):
            picks.append(fresh[i])
        if len(picks) == wanted:
            break
    return picks


def _learn_from_real(ctx: SearchContext, learner: _Learner, count: int) -> bool:
    """Sample, evaluate every episode for real and update on the real rewards; False once the budget ends."""
    episodes = learner.sample(count)
    results = ctx.propose_batch(list(episodes.options))
    if any(r is None for r in results):
        return False
    learner.update(episodes, np.array([r.result.top1 for r in results]))
    return True


def search(ctx: SearchContext, settings: HirelcSettings = HirelcSettings()) -> None:
    """Run the hierarchical search until the context's evaluation budget is spent."""
    learner = _Learner(ctx, settings)
    critic = _Critic(ctx, settings)
    ctx.propose(learner.anchor)
    while not ctx.exhausted:
        if not settings.use_surrogate:
            if not _learn_from_real(ctx, learner, settings.proposals_per_round):
                return
            continue
        critic.refit()
        for _ in range(settings.imagined_steps):
            episodes = learner.sample(settings.imagined_batch)
            learner.update(episodes, critic.imagined_rewards(episodes.options))
        picks = _screen(ctx, learner, critic, settings)
        if not picks:  # no configuration near the best ones is new: the space around the budget is spent
            return
        ctx.propose_batch(picks)
