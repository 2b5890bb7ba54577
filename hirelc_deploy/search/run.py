"""One search, start to finish: context, strategy, result, and the finalists worth measuring for real."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..budget import Budget
from ..records import SearchRecord
from ..sensitivity import Sensitivity
from .context import Evaluation, SearchContext, best_of
from .evaluate import Evaluator
from .prior import DamageModel
from .registry import get_strategy
from .space import SearchSpace


@dataclass
class SearchOutcome:
    """What a search found: every evaluation in order, and how long it took."""

    strategy: str
    seed: int
    evals: int
    budget_table_ms: float
    history: list[Evaluation]
    seconds: float
    waiting_seconds: float = 0.0  # wall time the search waited for its evaluations (parallel ones overlap)
    executor: str = "local (this process)"

    @property
    def best(self) -> Evaluation:
        return best_of(self.history)

    @property
    def evaluation_seconds(self) -> float:
        """Wall time of the evaluations, each cached one at what it cost when it was first run."""
        return sum(e.result.seconds for e in self.history)

    @property
    def strategy_seconds(self) -> float:
        """The strategy's own computation: the search's wall time less the time it waited for evaluations."""
        return max(self.seconds - self.waiting_seconds, 0.0)

    @property
    def evaluating_share(self) -> float:
        """Fraction of the search's time (as if nothing were cached) spent evaluating candidates."""
        total = self.evaluation_seconds + self.strategy_seconds
        return self.evaluation_seconds / total if total > 0 else 1.0

    def ranked(self) -> list[Evaluation]:
        """Evaluations from best to worst proxy accuracy."""
        return sorted(self.history, key=lambda e: e.result.key(), reverse=True)

    def record(self) -> SearchRecord:
        """What ``search.json`` keeps of the search."""
        best = self.best
        return SearchRecord(self.strategy, self.seed, self.evals, len(self.history), self.budget_table_ms,
                            self.seconds, best.index, best.to_dict(), self.evaluation_seconds,
                            self.strategy_seconds, self.executor)

def run_search(strategy: str, space: SearchSpace, sensitivity: Sensitivity, evaluator: Evaluator,
               budget_table_ms: float, evals: int, seed: int = 0,
               on_evaluation: Callable[[Evaluation], None] | None = None) -> SearchOutcome:
    """Run ``strategy`` for ``evals`` real evaluations by ``evaluator`` (and its executor) under
    ``budget_table_ms`` (the table's units, as ``budget.ResolvedBudget.table_ms`` gives it); deterministic per
    seed, whatever the executor. A budget the space cannot meet, or one with nothing to compress, is the
    budget's one-line error."""
    search = get_strategy(strategy)
    Budget(budget_table_ms, False, f"{budget_table_ms:.4f}ms (table units)").resolve(
        space.uncompressed_ms, space.uncompressed_ms, space.fastest_ms, "predicted by the table")
    torch.manual_seed(seed)
    np.random.seed(seed)
    ctx = SearchContext(space, DamageModel(space, sensitivity), budget_table_ms, evaluator.evaluate_many, evals, seed,
                        on_evaluation)
    start = time.perf_counter()
    search(ctx)
    return SearchOutcome(strategy, seed, evals, budget_table_ms, ctx.history, time.perf_counter() - start,
                         ctx.evaluating_seconds, evaluator.executor.describe())
