"""``rl-pruner``: a pruning distribution over blocks improved by Gaussian perturbations (after RL-Pruner).

The state is a distribution over blocks of the latency the model must shed (uncompressed minus budget),
uniform at first. Each step samples perturbations of its logits, turns every perturbed distribution into a
policy (each block gets its share of the reduction as a latency target; the least damaging option within
the target is taken, precision included) and evaluates it; the logits then move towards the perturbations
in proportion to how much better than average they scored, and the perturbation scale shrinks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .context import SearchContext


@dataclass(frozen=True)
class RlPrunerSettings:
    samples: int = 8  # perturbations per step
    sigma: float = 0.5
    sigma_decay: float = 0.9
    lr: float = 1.0
    temperature: float = 0.01  # softmax temperature over proxy accuracies when weighting perturbations


def _policy(ctx: SearchContext, logits: np.ndarray) -> np.ndarray:
    space = ctx.space
    rows = np.arange(space.n)
    full = space.block_ms[rows, space.full_index]
    share = np.exp(logits - logits.max())
    share /= share.sum()
    reduction = space.uncompressed_ms - ctx.budget_table_ms
    return ctx.prior.best_within(full - share * reduction)


def search(ctx: SearchContext, settings: RlPrunerSettings = RlPrunerSettings()) -> None:
    """Evolve the pruning distribution until the evaluation budget is spent."""
    logits = np.zeros(ctx.space.n)
    sigma = settings.sigma
    ctx.propose(_policy(ctx, logits))
    while not ctx.exhausted:
        noise = ctx.rng.standard_normal((settings.samples, ctx.space.n))
        results = ctx.propose_batch([_policy(ctx, logits + sigma * eps) for eps in noise])
        scored = [(eps, r.result.top1) for eps, r in zip(noise, results) if r is not None]
        if not scored:
            return
        rewards = np.array([s for _, s in scored])
        weights = np.exp((rewards - rewards.max()) / settings.temperature)
        weights = weights / weights.sum() - 1.0 / len(weights)
        logits = logits + settings.lr * sum(w * eps for w, (eps, _) in zip(weights, scored))
        sigma *= settings.sigma_decay
