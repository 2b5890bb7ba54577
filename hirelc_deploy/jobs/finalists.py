"""From the search's candidates to the one exported: finalists timed for real, in a closed loop on the budget.

Each round takes the best-scoring recorded candidates that the round's table predicts within the budget and times
them on the device interleaved with the uncompressed model (so noise moves both alike). The best-scoring one that
meets the budget there is exported. When none does, the table is corrected with what was just measured (the
per-part calibration of ``latency/calibrate.py``, fitted to every finalist measured so far against the
uncompressed model of its own session), and, where the corrected table still predicts a measured miss within the
budget, the budget it is read against is tightened until it predicts every measured miss over it: the next round
can neither choose a configuration that missed again nor a new one the corrected table thinks as fast. A round
that finds no recorded candidate predicted within the budget runs the search again on the corrected table (known
configurations cost nothing). When several finalists meet the budget, ``rank`` (``jobs/rerank.py``) may
order them by what a short distillation makes of them instead of by the proxy. After ``MAX_ROUNDS`` rounds, or
when no
configuration the corrected table allows fits, the run stops with a one-line error naming the fastest
configuration measured. Every round is recorded in ``finalists.json`` and drawn in the report.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Callable, Sequence

import numpy as np

from ..budget import FLAG, Budget
from ..errors import InputError
from ..latency.calibrate import fit
from ..models import ModelSpec
from ..precision import Precision
from ..records import Finalist, Finalists, LoopRound
from ..search import SearchSpace
from ..search.context import Evaluation
from ..search.evaluate import EvalResult
from .rerank import spearman
from ..targets import Backend, Target

log = logging.getLogger(__name__)

MAX_ROUNDS = 4
# (corrected space, budget in its units, round) -> the evaluations of a new search there
SearchAgain = Callable[[SearchSpace, float, int], list[Evaluation]]
# the finalists that met the budget, in proxy order -> their scores after a short distillation
Rank = Callable[[list[Evaluation]], list[EvalResult]]


def time_finalists(candidates: Sequence[Evaluation], space: SearchSpace, spec: ModelSpec, target: Target,
                   budget: Budget, backend: Backend, round_index: int = 0) -> list[Finalist]:
    """``candidates`` built and timed for real, interleaved with the uncompressed model, each judged against the
    budget next to that uncompressed latency; ``space`` gives their predicted latency (its table's units)."""
    full = ([b.full_width for b in spec.blocks()], [Precision.FP32] * space.n)
    uncompressed, *timings = backend.time_configs(spec, target, [full, *((e.widths, e.precisions)
                                                                         for e in candidates)])
    budget_now = budget.ms_against(uncompressed.median_ms)
    return [Finalist(e.index, list(e.widths), list(e.precisions), e.result.top1, _predicted(space, e), t.median_ms,
                     t.spread_ms, uncompressed.median_ms, budget_now, t.median_ms <= budget_now, round=round_index)
            for e, t in zip(candidates, timings)]


def _predicted(space: SearchSpace, evaluation: Evaluation) -> float:
    return float(space.latency(np.array(evaluation.options)[None])[0])


def close_the_loop(history: Sequence[Evaluation], space: SearchSpace, spec: ModelSpec, target: Target,
                   budget: Budget, budget_table_ms: float, count: int, backend: Backend,
                   search_again: SearchAgain, rank: Rank | None = None) -> tuple[Evaluation, Finalists]:
    """The evaluation to export and every round's finalists (see the module docstring).

    ``history`` is the search's evaluations, ``space`` the calibrated table it searched and ``budget_table_ms``
    the budget in its units. Of the finalists that meet the budget the best by proxy score is exported, or with
    ``rank`` and two or more of them, the best after distillation. Raises the one-line ``InputError`` on
    ``--latency-budget`` when nothing meets it.
    """
    pool = list(history)
    rows: list[Finalist] = []
    rounds: list[LoopRound] = []
    current, factors, table_budget = space, {}, budget_table_ms
    for round_index in range(MAX_ROUNDS):
        measured = {(tuple(r.widths), tuple(r.precisions)) for r in rows}
        searched = 0
        picks = _picks(pool, current, table_budget, measured, count)
        if not picks and round_index and table_budget >= current.fastest_ms:
            found = search_again(current, table_budget, round_index)
            known = {(e.widths, e.precisions) for e in pool}
            new = [e for e in found if (e.widths, e.precisions) not in known]
            first = max(e.index for e in pool) + 1 if pool else 0  # numbered after every recorded candidate
            pool += [replace(e, index=first + k) for k, e in enumerate(new)]
            searched = len(new)
            picks = _picks(pool, current, table_budget, measured, count)
        if not picks:
            break
        timed = time_finalists(picks, current, spec, target, budget, backend, round_index)
        rows += timed
        met = [row for row in timed if row.meets_budget]
        rounds.append(LoopRound(round_index, table_budget, factors, searched, bool(met)))
        log.info("closed loop, round %d: %s", round_index, "; ".join(
            f"#{r.index} {r.measured_ms:.4f} ms vs budget {r.budget_ms:.4f} ms" for r in timed))
        if met:
            return _choose(pool, rows, rounds, met, rank)
        current, factors, table_budget = _corrected(space, rows, budget)
    fastest = min(rows, key=lambda r: r.measured_ms / r.budget_ms) if rows else None
    finalists = Finalists(rows, rounds)
    raise BudgetNotMet(finalists, f"{FLAG} {budget.text}: no configuration the table allows met it on the device "
                       f"after {len(rounds)} round(s) of finalists; " + (
                           f"the fastest measured, candidate #{fastest.index} ({_describe(fastest)}), ran "
                           f"{fastest.measured_ms:.4f} ms against a budget of {fastest.budget_ms:.4f} ms "
                           f"({fastest.measured_ms / fastest.budget_ms:.2f}x)" if fastest else
                           "no candidate was predicted within it"))


def _choose(pool: Sequence[Evaluation], rows: list[Finalist], rounds: list[LoopRound], met: list[Finalist],
            rank: Rank | None) -> tuple[Evaluation, Finalists]:
    """The finalist to export among those that ``met`` the budget (in proxy order, best first), and the record."""
    evaluations = [next(e for e in pool if e.index == row.index) for row in met]
    if rank is None or len(met) < 2:
        return evaluations[0], Finalists([replace(r, chosen=r is met[0]) for r in rows], rounds)
    scores = rank(evaluations)
    best = max(range(len(met)), key=lambda k: scores[k].key())
    distilled = {row.index: score.top1 for row, score in zip(met, scores)}
    log.info("finalists after distillation: %s", "; ".join(
        f"#{row.index} proxy {row.top1:.4f} -> {score.top1:.4f}" for row, score in zip(met, scores)))
    marked = [replace(r, chosen=r is met[best], distilled_top1=distilled.get(r.index))
              for r in rows]
    return evaluations[best], Finalists(marked, rounds, spearman([r.top1 for r in met], [s.top1 for s in scores]))


class BudgetNotMet(InputError):
    """No finalist met the budget on the device; ``finalists`` holds every round, for the run directory."""

    def __init__(self, finalists: Finalists, message: str):
        super().__init__(message)
        self.finalists = finalists


def _describe(row: Finalist) -> str:
    kept = [w for w in row.widths if w]
    int8 = sum(1 for w, p in zip(row.widths, row.precisions) if w and p == Precision.INT8)
    return f"{len(kept)} of {len(row.widths)} blocks kept, {int8} INT8"


def _picks(pool: Sequence[Evaluation], space: SearchSpace, table_budget: float, measured: set, count: int
           ) -> list[Evaluation]:
    """The ``count`` best-scoring candidates not yet measured that ``space`` predicts within ``table_budget``."""
    fits = [e for e in pool if (e.widths, e.precisions) not in measured and _predicted(space, e) <= table_budget]
    return sorted(fits, key=lambda e: e.result.key(), reverse=True)[:count]


def _corrected(space: SearchSpace, rows: Sequence[Finalist], budget: Budget
               ) -> tuple[SearchSpace, dict[str, float], float]:
    """The calibrated table corrected by every finalist measured so far, its factors, and the budget in its units.

    Each finalist counts as its latency relative to the uncompressed model of its own session, in units of the
    table's uncompressed prediction (so sessions that ran faster or slower than others compare). The budget is
    the latest session's, relative to its uncompressed model, in the corrected table's units, tightened by the
    largest factor by which the corrected table still under-predicts a finalist that missed (the smallest that
    puts every measured miss over the budget: a strategy cannot propose one of them again).
    """
    table = space.table
    uncompressed = space.uncompressed_ms
    configs = [(r.widths, r.precisions) for r in rows]
    relative = [r.measured_ms / r.uncompressed_ms for r in rows]
    full = (list(space.full_width), [Precision.FP32] * space.n)
    calibration = fit(table, [*configs, full], [*(x * uncompressed for x in relative), uncompressed])
    corrected = SearchSpace(calibration.apply(table), space.precisions)
    latest = rows[-1]
    table_budget = latest.budget_ms / latest.uncompressed_ms * corrected.uncompressed_ms
    predicted = corrected.latency(np.array([corrected.encode(w, p) for w, p in configs]))
    under = [rel * corrected.uncompressed_ms / ms for r, rel, ms in zip(rows, relative, predicted)
             if not r.meets_budget]
    margin = max(under, default=1.0)
    if margin > 1.0:
        table_budget /= margin
    log.info("closed loop: table corrected by %s; budget %.4f table ms (miss margin %.3f)", calibration.factors,
             table_budget, margin)
    return corrected, calibration.factors, table_budget
