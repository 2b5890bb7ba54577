"""What every strategy shares: the space, the Fisher prior, the action wall and a budget of real evaluations.

Strategies only ever *propose* configurations. ``SearchContext.propose`` puts each proposal through the action
wall, evaluates it for real unless this search has already evaluated it, and records it; the search ends when
``evals`` distinct configurations have been evaluated (or a strategy keeps proposing only known ones for too
long). Every strategy therefore sees the same table, evaluation function, wall and number of evaluations.
"""

from __future__ import annotations

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
    evaluate: Callable[[list[int], list[str]], tuple[EvalResult, bool]]
    evals: int
    seed: int = 0
    on_evaluation: Callable[[Evaluation], None] | None = None
    history: list[Evaluation] = field(default_factory=list)
    proposals: int = 0
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
        self.proposals += 1
        x = self.wall(x)
        key = tuple(int(v) for v in x)
        if key in self._seen:
            return self._seen[key]
        if self.exhausted:
            return None
        widths, precisions = self.space.decode(x)
        result, cached = self.evaluate(widths, precisions)
        evaluation = Evaluation(len(self.history), key, tuple(widths), tuple(precisions),
                                float(self.space.latency(x[None])[0]), result, cached)
        self.history.append(evaluation)
        self._seen[key] = evaluation
        if self.on_evaluation:
            self.on_evaluation(evaluation)
        return evaluation

    @property
    def best(self) -> Evaluation | None:
        """The best evaluated configuration so far (highest top-1, then lowest KL)."""
        return best_of(self.history)

    def scores(self) -> tuple[np.ndarray, np.ndarray]:
        """Evaluated configurations (option indices) and their proxy accuracy, for learning from them."""
        if not self.history:
            return np.zeros((0, self.space.n), dtype=np.int64), np.zeros(0)
        return (np.array([e.options for e in self.history]), np.array([e.result.top1 for e in self.history]))
