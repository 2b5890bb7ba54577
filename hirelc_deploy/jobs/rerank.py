"""Finalists ranked by what a short distillation makes of them, not by the proxy measured before any training.

The search's proxy scores a candidate right after pruning and BatchNorm recalibration; the exported model is
scored after a distillation fine-tune, and the two orders differ (a candidate that lost a whole block can
recover more than one that was narrowed everywhere, or less). So when more than one finalist meets the budget
on the device, each is distilled from the uncompressed teacher for the same small number of steps on training
images (disjoint from the held-out images it is then scored on), scored like the proxy (INT8 blocks simulated,
held-out top-1, then KL), and the best is exported. How far the order moved is recorded as Spearman's rank
correlation between the proxy and the distilled scores (``finalists.json``, the report).
"""

from __future__ import annotations

import math
import time
from typing import Callable, Iterable, Sequence

import numpy as np
from torch import nn

from ..apply import DistillConfig, distill
from ..search.context import Evaluation
from ..search.evaluate import EvalResult, Evaluator


def distilled_scores(candidates: Sequence[Evaluation], evaluator: Evaluator, teacher: nn.Module,
                     make_batches: Callable[[], Iterable], steps: int,
                     on_candidate: Callable[[], None] | None = None) -> list[EvalResult]:
    """Each candidate built as the evaluator builds it, distilled for ``steps`` steps of ``make_batches()``
    (one fresh, seeded iterator per candidate, so all see the same images) and scored on the held-out images."""
    def tune(model: nn.Module) -> None:
        distill(model, teacher, make_batches, steps, DistillConfig(epochs=1.0))

    results = []
    for candidate in candidates:
        start = time.perf_counter()
        results.append(evaluator.score(evaluator.build(candidate.widths, candidate.precisions, tune), start))
        if on_candidate:
            on_candidate()
    return results


def spearman(first: Sequence[float], second: Sequence[float]) -> float | None:
    """Spearman's rank correlation of two scorings (ties share their mean rank); None with fewer than two
    items or when either scoring ranks them all equal."""
    if len(first) < 2:
        return None
    a, b = _ranks(first), _ranks(second)
    if np.std(a) == 0 or np.std(b) == 0:
        return None
    value = float(np.corrcoef(a, b)[0, 1])
    return value if math.isfinite(value) else None


def _ranks(values: Sequence[float]) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values), dtype=float)
    for value in np.unique(values):
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def finalist_steps(images: int, train_images: int, batch_size: int) -> int:
    """Distillation steps per finalist for ``--finalist-images``: one pass over that many training images (at
    most the fine-tune set), whole batches, at least one step."""
    return max(1, math.ceil(min(images, train_images) / batch_size))
