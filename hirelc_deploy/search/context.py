"""What every strategy shares: the space, the Fisher prior, the action wall and a budget of real evaluations.

Strategies only ever *propose* configurations, one (``propose``) or a batch (``propose_batch``: ask k, tell k,
so an executor can evaluate them in parallel). Each proposal goes through the action wall, is evaluated for
real unless this search has already evaluated it, and is recorded; the search ends when
``evals`` distinct configurations have been evaluated (or a strategy keeps proposing only known ones for too
long). Every strategy therefore sees the same table, evaluation function, wall and number of evaluations.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .evaluate import EvalResult
from .prior import DamageModel
from .space import SearchSpace
from .wall import repair

# A strategy that proposes this many known configurations per evaluation budget unit is considered done.
_MAX_PROPOSALS_PER_EVAL = 50


@dataclass(frozen=True)
class Evaluation:
    """One evaluated configuration (after the wall), in the order the search evaluated it."""

    index: int
    options: tuple[int, ...]
    widths: tuple[int, ...]
    precisions: tuple[str, ...]
    predicted_ms: float
    result: EvalResult
    cached: bool  # True when the result came from a cache shared with earlier searches

    def to_dict(self) -> dict:
        return {"index": self.index, "widths": list(self.widths), "precisions": list(self.precisions),
                "predicted_ms": self.predicted_ms, **self.result.to_dict(), "cached": self.cached}


def best_of(history: list[Evaluation]) -> Evaluation | None:
    """The best of some evaluations (highest top-1, then lowest KL; the earliest among equals)."""
    return max(history, key=lambda e: e.result.key(), default=None)


@dataclass
class SearchContext:
    """The shared infrastructure handed to a strategy."""

    space: SearchSpace
    prior: DamageModel
    budget_table_ms: float  # in the table's units (``budget.ResolvedBudget.table_ms``: checked feasible there)
    evaluate: Callable[[list[tuple[list[int], list[str]]]], list[tuple[EvalResult, bool]]]  # Evaluator.evaluate_many
    evals: int
    seed: int = 0
    on_evaluation: Callable[[Evaluation], None] | None = None
    history: list[Evaluation] = field(default_factory=list)
    proposals: int = 0
    evaluating_seconds: float = 0.0  # wall time spent waiting for evaluations (overlapping ones counted once)
    _seen: dict[tuple[int, ...], Evaluation] = field(default_factory=dict)

    def __post_init__(self):
        self.rng = np.random.default_rng(self.seed)

    @property
    def remaining(self) -> int:
        return self.evals - len(self.history)

    @property
    def exhausted(self) -> bool:
        return self.remaining <= 0 or self.proposals >= _MAX_PROPOSALS_PER_EVAL * self.evals

    def wall(self, x: np.ndarray) -> np.ndarray:
        """The action wall for this search's budget."""
        return repair(self.space, self.prior, x, self.budget_table_ms)

    def known(self, x: np.ndarray) -> Evaluation | None:
        """The evaluation of configuration ``x`` (after the wall) if this search has one."""
        return self._seen.get(tuple(int(v) for v in x))

    def propose(self, x: np.ndarray) -> Evaluation | None:
        """Evaluate ``wall(x)``; None once the evaluation budget is spent. Known configurations cost nothing."""
        return self.propose_batch([x])[0]

    def propose_batch(self, xs) -> list[Evaluation | None]:
        """Ask for several configurations at once (an executor may evaluate them in parallel) and be told their
        evaluations in the same order: ``propose`` for each, with the new ones evaluated together. A proposal
        repeating a known configuration, or an earlier one of the batch, gets that evaluation; new ones beyond
        the remaining budget get None. Recorded in proposal order, so the outcome does not depend on the
        executor."""
        keys = []
        for x in xs:
            self.proposals += 1
            keys.append(tuple(int(v) for v in self.wall(x)))
        new = [k for k in dict.fromkeys(keys) if k not in self._seen][:max(self.remaining, 0)]
        if self.proposals >= _MAX_PROPOSALS_PER_EVAL * self.evals:
            new = []  # the strategy keeps proposing known configurations: done
        decoded = [self.space.decode(np.array(k)) for k in new]
        start = time.perf_counter()
        results = self.evaluate(decoded) if decoded else []
        self.evaluating_seconds += time.perf_counter() - start
        for key, (widths, precisions), (result, cached) in zip(new, decoded, results):
            evaluation = Evaluation(len(self.history), key, tuple(widths), tuple(precisions),
                                    float(self.space.latency(np.array(key)[None])[0]), result, cached)
            self.history.append(evaluation)
            self._seen[key] = evaluation
            if self.on_evaluation:
                self.on_evaluation(evaluation)
        return [self._seen.get(k) for k in keys]

    @property
    def best(self) -> Evaluation | None:
        """The best evaluated configuration so far (highest top-1, then lowest KL)."""
        return best_of(self.history)

    def scores(self) -> tuple[np.ndarray, np.ndarray]:
        """Evaluated configurations (option indices) and their proxy accuracy, for learning from them."""
        if not self.history:
            return np.zeros((0, self.space.n), dtype=np.int64), np.zeros(0)
        return (np.array([e.options for e in self.history]), np.array([e.result.top1 for e in self.history]))
