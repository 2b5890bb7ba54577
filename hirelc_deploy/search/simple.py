"""The baselines without learning: ``fisher-greedy``, ``uniform`` and ``random``.

* ``fisher-greedy`` allocates by sensitivity alone: starting from the uncompressed model, the action wall's
  greedy rule (least Fisher damage per millisecond saved) shrinks blocks until the budget is met. Because the
  prior's weighting of INT8 rounding against channel removal is only an estimate, it also tries the same greedy
  with INT8 made cheaper or dearer and with block removal made dearer, and keeps the best evaluated result.
* ``uniform`` keeps the widest uniform width fraction that meets the budget, for each uniform precision
  the table offers, and keeps the better (the wall repairs a fraction that cannot meet the budget alone).
* ``random`` evaluates random configurations put through the action wall.
"""

from __future__ import annotations

import itertools

from .context import SearchContext
from .space import nearest_widths
from .wall import repair

# Multipliers of the INT8 and of the block-removal damage the fisher-greedy sweep tries, most trusted first.
_INT8_WEIGHTS = (1.0, 0.0, 10.0, 100.0)
_REMOVAL_WEIGHTS = (1.0, 3.0, 10.0, 0.3)
# Random configurations asked for at once (evaluated in parallel by a parallel executor). A constant, not the
# number of workers: the draws, and so a seed's result, must not depend on where the evaluations run.
_RANDOM_BATCH = 8


def fisher_greedy(ctx: SearchContext) -> None:
    """Greedy allocation by Fisher sensitivity, swept over the prior's two uncertain weights."""
    ctx.propose_batch([repair(ctx.space, ctx.prior.weighted(int8, removal), ctx.space.full_index,
                              ctx.budget_table_ms)
                       for int8, removal in itertools.product(_INT8_WEIGHTS, _REMOVAL_WEIGHTS)])


def uniform(ctx: SearchContext) -> None:
    """Best uniform width fraction meeting the budget, for each uniform precision."""
    space = ctx.space
    fractions = sorted({w / space.full_width[b] for b, opts in enumerate(space.options) for w in
                        (o.width for o in opts) if w > 0}, reverse=True)
    choices = []
    for precision in space.precisions:
        for fraction in fractions:
            x = space.encode(nearest_widths(space.table, fraction), [precision] * space.n)
            if space.latency(x[None])[0] <= ctx.budget_table_ms:
                break
        choices.append(x)
    ctx.propose_batch(choices)


def random_search(ctx: SearchContext) -> None:
    """Random configurations through the action wall."""
    while not ctx.exhausted:
        if None in ctx.propose_batch(list(ctx.space.random(ctx.rng, _RANDOM_BATCH))):
            return
