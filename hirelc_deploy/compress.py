"""``hirelc compress``: from a trained model and a latency budget to a measured, deployable engine.

table (reused or measured) -> uncompressed latency measured -> Fisher sensitivity -> search -> finalists
measured -> best policy applied for real (pruned, BatchNorm recalibrated, distilled) -> exported -> engine
re-benchmarked against the uncompressed one -> summary. Everything lands in the run directory.

The search predicts latency from the table. Before anything is fine-tuned, the few best policies it found are
built and timed for real against the uncompressed model (the table is right to a few percent on a quiet
machine, and this machine is not always quiet); the best one whose measured latency meets the budget is the
one exported. Every latency in the summary is measured in a fresh process (``isolation.py``), and the summary
says plainly when the exported engine misses the budget.
"""

from __future__ import annotations

import datetime as dt
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime
import torch

from . import __version__
from .apply import DistillConfig
from .bench import BenchResult, bench, measure_latency
from .data import Normalize, load_images, open_dataset
from .errors import InputError
from .isolation import run_isolated
from .latency.calibrate import Calibration, fit, measure_isolated
from .latency.profile import model_input_shape
from .latency.reuse import ensure_table
from .models import get_model_spec
from .models.checkpoints import resolve_weights
from .pipeline import DataConfig, export_policy, load_model, prepare_data, sensitivity_of
from .policy import Policy
from .runs import RunDirectory
from .search import SearchSpace
from .latency.table import LatencyTable
from .search.budget import Budget, parse_budget
from .search.context import Evaluation
from .search.evaluate import EvalData, Evaluator
from .search.prior import DamageModel
from .search.registry import get_strategy
from .search.run import SearchOutcome, run_search
from .search.wall import repair
from .settings import cache_dir, tables_dir
from .targets import Target, current_fingerprint, load_target

# Fresh processes the exported engine is timed in for the verdict (see ``final_latency``).
FINAL_ROUNDS = 3


class Reporter(Protocol):
    """Where ``compress`` reports progress: a phase with an expected number of steps, steps, messages."""

    def phase(self, name: str, total: int | None = None) -> None: ...

    def advance(self, steps: int = 1) -> None: ...

    def note(self, message: str) -> None: ...


class SilentReporter:
    """A Reporter that reports nothing."""

    def phase(self, name: str, total: int | None = None) -> None:
        pass

    def advance(self, steps: int = 1) -> None:
        pass

    def note(self, message: str) -> None:
        pass


@dataclass(frozen=True)
class CompressConfig:
    """Everything a compress run depends on (saved as the run's ``config.json``)."""

    model: str
    weights: str
    data: str
    target: str
    latency_budget: str
    strategy: str = "hirelc"
    evals: int = 100
    finetune_epochs: float = 1.0
    finetune_images: int = 10_000
    heldout_images: int = 1_000
    test_per_class: int | None = None  # test images per class for top-1 before/after (None = the whole split)
    finalists: int = 3
    seed: int = 0
    table: str | None = None

    def check(self) -> None:
        """Flag errors before any work starts."""
        get_model_spec(self.model)
        get_strategy(self.strategy)
        parse_budget(self.latency_budget)
        for flag, value, low in (("--evals", self.evals, 1), ("--finalists", self.finalists, 1),
                                 ("--finetune-images", self.finetune_images, 1)):
            if value < low:
                raise InputError(f"{flag}: must be at least {low}, got {value}")
        if self.finetune_epochs < 0:
            raise InputError(f"--finetune-epochs: must not be negative, got {self.finetune_epochs}")


def calibrated_space(table: LatencyTable, spec, target: Target, sensitivity, budget: Budget
                     ) -> tuple[SearchSpace, Calibration, float]:
    """The search space over ``table`` calibrated against real engines (see ``latency/calibrate.py``), the
    calibration, and the uncompressed model's measured latency (the first engine timed).

    The engines are the uncompressed model, the all-INT8 one, the fastest configuration, and the Fisher-greedy
    policies for the budget with INT8 judged cheap and dear: the kinds of configuration the search will weigh.
    """
    raw = SearchSpace(table, target.precisions)
    prior = DamageModel(raw, sensitivity)
    probe = budget.milliseconds(raw.uncompressed_ms) if budget.relative else budget.value
    probe = min(max(probe, raw.fastest_ms), raw.uncompressed_ms)
    candidates = [raw.full_index, raw.fastest_index]
    if "int8" in raw.precisions:
        candidates.insert(1, np.array([raw.index(b, int(w), "int8") for b, w in enumerate(raw.full_width)]))
    candidates += [repair(raw, prior.weighted(int8, 1.0), raw.full_index, probe) for int8 in (1.0, 100.0)]
    unique = dict.fromkeys(tuple(int(v) for v in c) for c in candidates)
    configs = [raw.decode(x) for x in unique]
    measured = [t.median_ms for t in measure_isolated(spec, target, model_input_shape(spec.name, target), configs)]
    calibration = fit(table, configs, measured)
    return SearchSpace(calibration.apply(table), target.precisions), calibration, measured[0]


def verify_finalists(outcome: SearchOutcome, space: SearchSpace, spec, target: Target, budget, count: int
                      ) -> tuple[Evaluation, list[dict]]:
    """Time the best ``count`` policies for real, interleaved with the uncompressed model, and choose the
    best-scoring one that meets the budget (the fastest one, when none does)."""
    finalists = outcome.ranked()[:count]
    full = ([b.full_width for b in spec.blocks()], ["fp32"] * space.n)
    uncompressed, *timings = measure_isolated(spec, target, model_input_shape(spec.name, target),
                                             [full, *((e.widths, e.precisions) for e in finalists)])
    budget_now = budget.milliseconds(uncompressed.median_ms)
    rows = [{"index": e.index, "top1": e.result.top1, "predicted_ms": e.predicted_ms,
             "measured_ms": t.median_ms, "spread_ms": t.spread_ms,
             "uncompressed_ms": uncompressed.median_ms, "budget_ms": budget_now,
             "meets_budget": t.median_ms <= budget_now}
            for e, t in zip(finalists, timings)]
    meeting = [e for e, row in zip(finalists, rows) if row["meets_budget"]]
    chosen = meeting[0] if meeting else finalists[min(range(len(rows)), key=lambda i: rows[i]["measured_ms"])]
    return chosen, rows


def _search(config: CompressConfig, run: RunDirectory, space: SearchSpace, sensitivity, evaluator,
            budget_table_ms: float, reporter: Reporter) -> SearchOutcome:
    reporter.phase(f"search ({config.strategy})", config.evals)

    def record(evaluation: Evaluation) -> None:
        run.append_jsonl("candidates.jsonl", {"strategy": config.strategy, **evaluation.to_dict()})
        reporter.advance()

    outcome = run_search(config.strategy, space, sensitivity, evaluator, budget_table_ms, config.evals,
                         config.seed, record)
    run.write_json("search.json", outcome.summary())
    return outcome


def final_latency(artifact: Path, baseline: Path, target: Target, first: BenchResult, rounds: int = FINAL_ROUNDS
                  ) -> dict:
    """Engine and uncompressed latency over ``rounds`` fresh processes (``first`` is the benchmark's own).

    One process's median can sit 20% off the next one's on this machine (its threads land on a busy core, or
    not), so the verdict uses the median over processes, each timed interleaved with the uncompressed model.
    """
    pairs = [(first.latency_ms["median_ms"], first.baseline_latency_ms["median_ms"])]
    for _ in range(rounds - 1):
        timings = run_isolated(measure_latency, {"engine": artifact, "uncompressed": baseline}, target)
        pairs.append((timings["engine"].median_ms, timings["uncompressed"].median_ms))
    engine, uncompressed = (np.array(v) for v in zip(*pairs))
    return {"engine_ms": float(np.median(engine)), "uncompressed_ms": float(np.median(uncompressed)),
            "engine_rounds_ms": engine.tolist(), "uncompressed_rounds_ms": uncompressed.tolist(),
            "speedup": float(np.median(uncompressed / engine))}


def _summary(config, budget, uncompressed_ms, drift, policy: Policy, result, latency: dict, table_source) -> dict:
    budget_ms = budget.milliseconds(latency["uncompressed_ms"])
    measured = latency["engine_ms"]
    ratio = measured / budget_ms
    verdict = ("meets the budget" if ratio <= 1.0 else
               f"MISSES the budget by {100 * (ratio - 1):.1f}%" + (" (within measurement noise, 5%)"
                                                                  if ratio <= 1.05 else ""))
    return {
        "model": config.model, "target": config.target, "strategy": config.strategy,
        "budget": budget.text, "budget_ms": budget_ms, "table": table_source,
        "uncompressed_ms_at_start": uncompressed_ms, "table_drift": drift,
        "predicted_ms": policy.predicted_latency_ms * drift, "predicted_table_ms": policy.predicted_latency_ms,
        "measured_ms": measured, "measured_rounds_ms": latency["engine_rounds_ms"],
        "uncompressed_ms": latency["uncompressed_ms"], "uncompressed_rounds_ms": latency["uncompressed_rounds_ms"],
        "speedup": latency["speedup"],
        "budget_ratio": ratio, "meets_budget": ratio <= 1.0, "verdict": verdict,
        "top1_before": result.baseline_top1, "top1_after": result.top1, "test_images": result.top1_images,
        "bytes_before": result.baseline_file_bytes, "bytes_after": result.file_bytes,
        "proxy_top1": policy.notes.get("proxy_top1"),
    }


def compress(config: CompressConfig, run_dir: Path, reporter: Reporter | None = None) -> dict:
    """Run the whole compression workflow; returns the summary (also written to ``summary.json``)."""
    reporter = reporter or SilentReporter()
    config.check()
    spec, target, budget = get_model_spec(config.model), load_target(config.target), parse_budget(config.latency_budget)
    weights = resolve_weights(config.weights, cache_dir())
    teacher = load_model(spec, weights)
    torch.manual_seed(config.seed)
    data_config = DataConfig(seed=config.seed, train_images=config.finetune_images,
                             heldout_images=config.heldout_images)
    reporter.phase("decoding images", config.finetune_images + config.heldout_images)
    data = prepare_data(spec, Path(config.data), data_config, on_image=reporter.advance)
    run = RunDirectory(run_dir)
    run.write_json("config.json", {
        **asdict(config), "weights_file": str(weights), "run_dir": str(run.root), "version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "fingerprint": current_fingerprint(target).to_dict(),
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "onnxruntime": onnxruntime.__version__},
    })
    reporter.phase("latency table")
    table, table_source = ensure_table(config.model, target, tables_dir(), Path(config.table) if config.table
                                       else None, progress=lambda *_: reporter.advance())
    reporter.note(f"latency table {table_source}")
    table.save(run.path("latency_table.json"))
    reporter.phase("Fisher sensitivity", data_config.fisher_images)
    sensitivity = sensitivity_of(teacher, spec, data, data_config, on_sample=reporter.advance)
    sensitivity.save(run.path("sensitivity.json"))

    reporter.phase("calibrating the table against real engines")
    space, calibration, uncompressed_ms = calibrated_space(table, spec, target, sensitivity, budget)
    run.write_json("calibration.json", calibration.to_dict())
    space.table.save(run.path("latency_table_calibrated.json"))
    drift = uncompressed_ms / space.uncompressed_ms
    budget_ms = budget.milliseconds(uncompressed_ms)
    if budget_ms < space.fastest_ms * drift:
        raise InputError(f"--latency-budget {budget.text}: {budget_ms:.4f} ms is below the fastest configuration "
                         f"the table allows, {space.fastest_ms * drift:.4f} ms")
    if budget_ms >= uncompressed_ms:
        raise InputError(f"--latency-budget {budget.text}: {budget_ms:.4f} ms is not below the uncompressed "
                         f"model's measured {uncompressed_ms:.4f} ms: there is nothing to compress")
    run.write_json("baseline.json", {"uncompressed_ms": uncompressed_ms, "table_predicted_ms": space.uncompressed_ms,
                                     "table_drift": drift, "budget_ms": budget_ms,
                                     "budget_table_ms": budget_ms / drift})
    evaluator = Evaluator(teacher, spec.input_shape, EvalData.from_prepared(data), sensitivity)
    outcome = _search(config, run, space, sensitivity, evaluator, budget_ms / drift, reporter)

    reporter.phase("measuring finalists")
    chosen, finalists = verify_finalists(outcome, space, spec, target, budget, config.finalists)
    run.write_json("finalists.json", finalists)
    policy = space.policy(chosen.options, strategy=config.strategy, evaluation=chosen.index,
                          proxy_top1=chosen.result.top1, proxy_agreement=chosen.result.agreement)
    policy.save(run.path("policy.json"))

    steps = max(1, round(config.finetune_epochs * (len(data.train) // data_config.batch_size)))
    reporter.phase("fine-tuning (distillation)", steps)
    artifacts = run.path("artifacts")
    export_policy(teacher, spec, policy, target, data, data_config, DistillConfig(epochs=config.finetune_epochs),
                  artifacts, table.fingerprint, sensitivity, "fisher", lambda *_: reporter.advance())

    reporter.phase("benchmarking the engine")
    test = load_images(open_dataset(Path(config.data), "test", limit_per_class=config.test_per_class))
    result = run_isolated(bench, artifacts / "model.onnx", target, test, Normalize(spec.mean, spec.std),
                          artifacts / "baseline_fp32.onnx")
    result.save(run.path("bench.json"))
    latency = final_latency(artifacts / "model.onnx", artifacts / "baseline_fp32.onnx", target, result)
    summary = _summary(config, budget, uncompressed_ms, drift, policy, result, latency, table_source)
    run.write_json("summary.json", summary)
    return summary
