"""The search of a compress run, checkpointed: every evaluation appended to ``candidates.jsonl`` as it comes back,
so a killed run resumes with them (``resumption.py``)."""

from __future__ import annotations

import logging

from ..progress import Reporter
from ..records import Candidate, CompressConfig
from ..resumption import evaluation_cache, read_candidates
from ..runs import RunDirectory, RunFiles
from ..search import SearchSpace
from ..search.context import Evaluation
from ..search.evaluate import Evaluator
from ..search.run import SearchOutcome, run_search
from ..sensitivity import Sensitivity

log = logging.getLogger(__name__)


def checkpointed_search(config: CompressConfig, run: RunDirectory, space: SearchSpace, sensitivity: Sensitivity,
                        evaluator: Evaluator, budget_table_ms: float, reporter: Reporter, round_index: int = 0
                        ) -> SearchOutcome:
    """The search, checkpointed after every evaluation in ``candidates.jsonl``. Evaluations already recorded
    there (a resumed run) pre-fill the evaluator's cache and are not recorded twice (see ``resumption.py``).

    Round 0 is the run's search (``search.json``). A later round is the closed loop searching again on a
    corrected table (``jobs/finalists.py``): half the evaluations, a seed of its own, its candidates labelled
    with the round."""
    recorded = evaluation_cache(read_candidates(run.root))
    evaluator.cache.update(recorded)
    if recorded and not round_index:
        log.info("resuming the search: %d evaluations recorded", len(recorded))
    label = config.strategy + (f" (closed-loop round {round_index})" if round_index else "")

    def record(evaluation: Evaluation) -> None:
        if (evaluation.widths, evaluation.precisions) not in recorded:
            run.append_jsonl(RunFiles.CANDIDATES, Candidate(strategy=label, **evaluation.to_dict()).to_dict())
        reporter.advance()

    evals = max(config.finalists, config.evals // 2) if round_index else config.evals
    outcome = run_search(config.strategy, space, sensitivity, evaluator, budget_table_ms, evals,
                         config.seed + round_index, record)
    if not round_index:
        outcome.record().save(run.path(RunFiles.SEARCH))
    return outcome
