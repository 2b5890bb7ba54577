"""``hirelc compress``: from a trained model and a latency budget to a measured, deployable engine.

table (reused or measured) -> uncompressed latency measured -> Fisher sensitivity -> search -> finalists
measured -> best policy applied for real (pruned, BatchNorm recalibrated, distilled) -> exported -> engine
re-benchmarked against the uncompressed one -> summary. Everything lands in the run directory.

The search predicts latency from the table. Before anything is fine-tuned, the few best policies it found are
built and timed for real against the uncompressed model (the table is right to a few percent on a quiet
machine, and this machine is not always quiet); the best one whose measured latency meets the budget is the
one exported. Every latency in the summary is measured in a fresh process (``isolation.py``), and the summary
says plainly when the exported engine misses the budget.

TensorRT targets take another path after the search (``compress_tensorrt.py``): no calibration or finalist
timing, the engine timed with CUDA events on a GPU, and a summary labelled PREDICTED where there is none.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import platform
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator, Protocol

import numpy as np
import onnxruntime
import torch

from . import __version__
from .apply import DistillConfig
from .bench import BenchResult, bench, measure_latency
from .data import Normalize, load_images, open_dataset
from .errors import InputError
from .export import MANIFEST_NAME, load_manifest
from .isolation import run_isolated
from .latency.calibrate import Calibration, fit, measure_isolated
from .latency.reuse import ensure_table
from .models import get_model_spec
from .models.checkpoints import resolve_weights
from .pipeline import DataConfig, check_dataset, export_policy, load_model, prepare_data, sensitivity_of
from .policy import Policy
from .resume import CANDIDATES, CONFIG, check_same_run, evaluation_cache, read_candidates
from .runs import RunDirectory, read_json_object, sha256
from .search import SearchSpace
from .latency.table import LatencyTable, load_table
from .search.budget import Budget, parse_budget
from .search.context import Evaluation
from .search.evaluate import EvalData, Evaluator
from .search.prior import DamageModel
from .search.registry import get_strategy
from .search.run import SearchOutcome, run_search
from .search.wall import repair
from .sensitivity import Sensitivity
from .settings import cache_dir, tables_dir
from .targets import Target, current_fingerprint, load_target

# Fresh processes the exported engine is timed in for the verdict (see ``final_latency``).
FINAL_ROUNDS = 3
STATUS = "status.json"  # where the run is: running (stage), failed (stage, error) or complete
TABLE = "latency_table.json"

log = logging.getLogger(__name__)


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
    measured = [t.median_ms for t in measure_isolated(spec, target, configs)]
    calibration = fit(table, configs, measured)
    return SearchSpace(calibration.apply(table), target.precisions), calibration, measured[0]


def verify_finalists(outcome: SearchOutcome, space: SearchSpace, spec, target: Target, budget, count: int
                      ) -> tuple[Evaluation, list[dict]]:
    """Time the best ``count`` policies for real, interleaved with the uncompressed model, and choose the
    best-scoring one that meets the budget (the fastest one, when none does)."""
    finalists = outcome.ranked()[:count]
    full = ([b.full_width for b in spec.blocks()], ["fp32"] * space.n)
    uncompressed, *timings = measure_isolated(spec, target, [full, *((e.widths, e.precisions) for e in finalists)])
    budget_now = budget.milliseconds(uncompressed.median_ms)
    rows = [{"index": e.index, "widths": list(e.widths), "precisions": list(e.precisions),
             "top1": e.result.top1, "predicted_ms": e.predicted_ms,
             "measured_ms": t.median_ms, "spread_ms": t.spread_ms,
             "uncompressed_ms": uncompressed.median_ms, "budget_ms": budget_now,
             "meets_budget": t.median_ms <= budget_now}
            for e, t in zip(finalists, timings)]
    meeting = [e for e, row in zip(finalists, rows) if row["meets_budget"]]
    chosen = meeting[0] if meeting else finalists[min(range(len(rows)), key=lambda i: rows[i]["measured_ms"])]
    for row in rows:
        row["chosen"] = row["index"] == chosen.index
    return chosen, rows


def _search(config: CompressConfig, run: RunDirectory, space: SearchSpace, sensitivity, evaluator: Evaluator,
            budget_table_ms: float, reporter: Reporter) -> SearchOutcome:
    """The search, checkpointed after every evaluation in ``candidates.jsonl``. Evaluations already recorded
    there (a resumed run) pre-fill the evaluator's cache and are not recorded twice (see ``resume.py``)."""
    recorded = evaluation_cache(read_candidates(run.root))
    evaluator.cache.update(recorded)
    if recorded:
        log.info("resuming the search: %d evaluations recorded", len(recorded))

    def record(evaluation: Evaluation) -> None:
        if (evaluation.widths, evaluation.precisions) not in recorded:
            run.append_jsonl(CANDIDATES, {"strategy": config.strategy, **evaluation.to_dict()})
        reporter.advance()

    outcome = run_search(config.strategy, space, sensitivity, evaluator, budget_table_ms, config.evals,
                         config.seed, record)
    run.write_json("search.json", outcome.summary())
    return outcome


def final_latency(artifact: Path, baseline: Path, target: Target, first: BenchResult, rounds: int = FINAL_ROUNDS,
                  on_round: Callable[[], None] | None = None) -> dict:
    """Engine and uncompressed latency over ``rounds`` fresh processes (``first`` is the benchmark's own).

    One process's median can sit 20% off the next one's on this machine (its threads land on a busy core, or
    not), so the verdict uses the median over processes, each timed interleaved with the uncompressed model.
    """
    pairs = [(first.latency_ms["median_ms"], first.baseline_latency_ms["median_ms"])]
    for _ in range(rounds - 1):
        timings = run_isolated(measure_latency, {"engine": artifact, "uncompressed": baseline}, target)
        pairs.append((timings["engine"].median_ms, timings["uncompressed"].median_ms))
        if on_round:
            on_round()
    engine, uncompressed = (np.array(v) for v in zip(*pairs))
    return {"engine_ms": float(np.median(engine)), "uncompressed_ms": float(np.median(uncompressed)),
            "engine_rounds_ms": engine.tolist(), "uncompressed_rounds_ms": uncompressed.tolist(),
            "speedup": float(np.median(uncompressed / engine))}


def verdict(ratio: float) -> str:
    """The verdict on a measured latency that is ``ratio`` times the budget."""
    if ratio <= 1.0:
        return "meets the budget"
    return f"MISSES the budget by {100 * (ratio - 1):.1f}%" + (" (within measurement noise, 5%)"
                                                              if ratio <= 1.05 else "")


def _summary(config, budget, uncompressed_ms, drift, policy: Policy, result, latency: dict, table_source) -> dict:
    budget_ms = budget.milliseconds(latency["uncompressed_ms"])
    measured = latency["engine_ms"]
    ratio = measured / budget_ms
    return {
        "model": config.model, "target": config.target, "strategy": config.strategy,
        "budget": budget.text, "budget_ms": budget_ms, "table": table_source,
        "uncompressed_ms_at_start": uncompressed_ms, "table_drift": drift,
        "predicted_ms": policy.predicted_latency_ms * drift, "predicted_table_ms": policy.predicted_latency_ms,
        "measured_ms": measured, "measured_rounds_ms": latency["engine_rounds_ms"],
        "uncompressed_ms": latency["uncompressed_ms"], "uncompressed_rounds_ms": latency["uncompressed_rounds_ms"],
        "speedup": latency["speedup"],
        "budget_ratio": ratio, "meets_budget": ratio <= 1.0, "verdict": verdict(ratio),
        "top1_before": result.baseline_top1, "top1_after": result.top1, "test_images": result.top1_images,
        "bytes_before": result.baseline_file_bytes, "bytes_after": result.file_bytes,
        "proxy_top1": policy.notes.get("proxy_top1"),
    }


def _open_run(config: CompressConfig, run_dir: Path, resume: bool, target: Target, weights: Path) -> None:
    """Refuse, before anything is written, a run directory that holds another run (or, resuming, a
    different one)."""
    if resume:
        check_same_run(run_dir, config, sha256(weights), current_fingerprint(target))
    elif (Path(run_dir) / CONFIG).exists():
        raise InputError(f"--run-dir {run_dir}: holds a run already; continue it with --resume {run_dir} or "
                         "choose another directory")


def _check_budget_by_table(budget: Budget, table: LatencyTable, precisions) -> None:
    """Refuse a fractional budget the table cannot meet before anything is measured (an absolute one waits
    for the uncompressed model to be timed: the machine may run faster or slower than when it was profiled)."""
    if not budget.relative:
        return
    space = SearchSpace(table, precisions)
    fastest = space.fastest_ms / space.uncompressed_ms
    if budget.value < fastest:
        raise InputError(f"--latency-budget {budget.text}: below the fastest configuration the table allows, "
                         f"{fastest:.3f}x ({space.fastest_ms:.4f} ms of {space.uncompressed_ms:.4f} ms by the table)")


def _check_budget(budget: Budget, budget_ms: float, fastest_ms: float, uncompressed_ms: float,
                  how: str = "measured") -> None:
    if budget_ms < fastest_ms:
        raise InputError(f"--latency-budget {budget.text}: {budget_ms:.4f} ms is below the fastest configuration "
                         f"the table allows, {fastest_ms:.4f} ms ({fastest_ms / uncompressed_ms:.3f}x)")
    if budget_ms >= uncompressed_ms:
        raise InputError(f"--latency-budget {budget.text}: {budget_ms:.4f} ms is not below the uncompressed "
                         f"model's {how} {uncompressed_ms:.4f} ms: there is nothing to compress")


class Stages:
    """Announces each stage to the reporter, the log and ``status.json`` (which says where a run stopped)."""

    def __init__(self, run: RunDirectory, reporter: Reporter):
        self.run, self.reporter, self.name = run, reporter, ""

    def start(self, name: str, total: int | None = None) -> None:
        self.name = name
        self.reporter.phase(name, total)
        log.info("stage: %s", name)
        self.run.write_json(STATUS, {"state": "running", "stage": name, "updated": _now()})

    def reused(self, record: str) -> bool:
        """Whether ``record`` exists from before (a resumed run), saying so when it does."""
        if self.run.path(record).exists():
            self.reporter.note(f"{self.name}: reusing {record} from the run directory")
            log.info("%s: reusing %s", self.name, record)
            return True
        return False

    def failed(self, error: Exception) -> None:
        self.run.write_json(STATUS, {"state": "failed", "stage": self.name, "error": str(error), "updated": _now()})

    def finished(self) -> None:
        self.run.write_json(STATUS, {"state": "complete", "stage": self.name, "updated": _now()})


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def compress(config: CompressConfig, run_dir: Path, reporter: Reporter | None = None, resume: bool = False) -> dict:
    """Run the whole compression workflow; returns the summary (also written to ``summary.json``).

    With ``resume``, ``run_dir`` must hold a run of the same configuration on this device; every record it
    holds is reused and the search replays its recorded evaluations (``resume.py``). Every input is checked
    before the run directory is written to.
    """
    reporter = reporter or SilentReporter()
    config.check()
    spec, target, budget = get_model_spec(config.model), load_target(config.target), parse_budget(config.latency_budget)
    weights = resolve_weights(config.weights, cache_dir())
    teacher = load_model(spec, weights)
    check_dataset(spec, Path(config.data))
    _open_run(config, run_dir, resume, target, weights)
    run = RunDirectory(run_dir, create=False)
    if resume:
        table, table_source = load_table(run.path(TABLE)), f"from the resumed run ({run.path(TABLE)})"
    else:
        reporter.phase("latency table")
        table, table_source = ensure_table(config.model, target, tables_dir(), Path(config.table) if config.table
                                           else None, progress=lambda *_: reporter.advance())
    _check_budget_by_table(budget, table, target.precisions)
    torch.manual_seed(config.seed)
    data_config = DataConfig(seed=config.seed, train_images=config.finetune_images,
                             heldout_images=config.heldout_images)
    reporter.phase("decoding images", config.finetune_images + config.heldout_images)
    data = prepare_data(spec, Path(config.data), data_config, on_image=reporter.advance)

    run.create()
    stages = Stages(run, reporter)
    with _run_log(run):
        try:
            summary = _compress(config, run, stages, spec, target, budget, weights, teacher, data, data_config,
                                table, table_source, resume)
        except BaseException as exc:
            stages.failed(exc)
            raise
        stages.finished()
    return summary


def _compress(config: CompressConfig, run: RunDirectory, stages: Stages, spec, target: Target, budget: Budget,
              weights: Path, teacher, data, data_config: DataConfig, table: LatencyTable, table_source: str,
              resume: bool) -> dict:
    reporter = stages.reporter
    if resume:
        log.info("resuming the run in %s", run.root)
    else:
        # The table before the configuration: a run directory with a config.json always has its table.
        table.save(run.path(TABLE))
        run.write_json(CONFIG, {
            "command": "compress", **asdict(config), "weights_file": str(weights),
            "weights_sha256": sha256(weights), "run_dir": str(run.root), "version": __version__,
            "created": _now(), "fingerprint": current_fingerprint(target).to_dict(),
            "versions": {"python": platform.python_version(), "torch": torch.__version__,
                         "onnxruntime": onnxruntime.__version__},
        })
    reporter.note(f"latency table {table_source}")
    log.info("latency table %s", table_source)

    stages.start("Fisher sensitivity", data_config.fisher_images)
    if stages.reused("sensitivity.json"):
        sensitivity = Sensitivity.load(run.path("sensitivity.json"))
    else:
        sensitivity = sensitivity_of(teacher, spec, data, data_config, on_sample=reporter.advance)
        sensitivity.save(run.path("sensitivity.json"))

    tensorrt = target.backend == "tensorrt"
    stages.start("TensorRT: the table as it is (engines are timed after export)" if tensorrt
                 else "calibrating the table against real engines")
    reused = stages.reused("baseline.json")
    if tensorrt and not reused:
        from .compress_tensorrt import uncalibrated_space

        space = uncalibrated_space(run, table, target)
        uncompressed_ms = space.uncompressed_ms
    elif reused:
        space = SearchSpace(load_table(run.path("latency_table_calibrated.json")), target.precisions)
        baseline = read_json_object(run.path("baseline.json"), "baseline record", InputError)
        uncompressed_ms, table_source = baseline["uncompressed_ms"], baseline["table_source"]
    else:
        space, calibration, uncompressed_ms = calibrated_space(table, spec, target, sensitivity, budget)
        run.write_json("calibration.json", calibration.to_dict())
        log.info("table calibrated against %d engines: %s", len(calibration.points), calibration.factors)
        space.table.save(run.path("latency_table_calibrated.json"))
    drift = uncompressed_ms / space.uncompressed_ms
    budget_ms = budget.milliseconds(uncompressed_ms)
    _check_budget(budget, budget_ms, space.fastest_ms * drift, uncompressed_ms,
                  "predicted by the table" if tensorrt else "measured")
    run.write_json("baseline.json", {"uncompressed_ms": uncompressed_ms, "table_predicted_ms": space.uncompressed_ms,
                                     "table_drift": drift, "budget_ms": budget_ms,
                                     "budget_table_ms": budget_ms / drift, "table_source": table_source})
    evaluator = Evaluator(teacher, spec.input_shape, EvalData.from_prepared(data), sensitivity)
    stages.start(f"search ({config.strategy})", config.evals)
    outcome = _search(config, run, space, sensitivity, evaluator, budget_ms / drift, reporter)

    # TensorRT finalists are not timed (calibration neither): the engine is timed after export, on a GPU.
    chosen = outcome.best if tensorrt else _measured_choice(config, run, stages, outcome, space, spec, target, budget)
    policy = space.policy(chosen.options, strategy=config.strategy, evaluation=chosen.index,
                          proxy_top1=chosen.result.top1, proxy_agreement=chosen.result.agreement)
    policy.save(run.path("policy.json"))

    steps = max(1, round(config.finetune_epochs * (len(data.train) // data_config.batch_size)))
    stages.start("fine-tuning (distillation) and export", steps)
    artifacts = run.path("artifacts")
    if not _export_done(artifacts, policy):
        export_policy(teacher, spec, policy, target, data, data_config, DistillConfig(epochs=config.finetune_epochs),
                      artifacts, table.fingerprint, sensitivity, "fisher", lambda *_: reporter.advance())

    if tensorrt:
        from .compress_tensorrt import tensorrt_result

        return tensorrt_result(config, run, stages, spec, target, budget, space, policy, table_source, table.kind)
    stages.start("benchmarking the engine", FINAL_ROUNDS)
    if stages.reused("bench.json"):
        result = BenchResult.load(run.path("bench.json"))
    else:
        test = load_images(open_dataset(Path(config.data), "test", limit_per_class=config.test_per_class))
        result = run_isolated(bench, artifacts / "model.onnx", target, test, Normalize(spec.mean, spec.std),
                              artifacts / "baseline_fp32.onnx")
        result.save(run.path("bench.json"))
    reporter.advance()
    if stages.reused("final_latency.json"):
        latency = read_json_object(run.path("final_latency.json"), "final latency record", InputError)
    else:
        latency = final_latency(artifacts / "model.onnx", artifacts / "baseline_fp32.onnx", target, result,
                                on_round=reporter.advance)
        run.write_json("final_latency.json", latency)
    summary = _summary(config, budget, uncompressed_ms, drift, policy, result, latency, table_source)
    run.write_json("summary.json", summary)
    log.info("engine %.4f ms against a budget of %.4f ms: %s", summary["measured_ms"], summary["budget_ms"],
             summary["verdict"])
    return summary


def _measured_choice(config: CompressConfig, run: RunDirectory, stages: Stages, outcome: SearchOutcome,
                     space: SearchSpace, spec, target: Target, budget: Budget) -> Evaluation:
    """The finalist to export, from ``finalists.json`` or by timing the finalists (``verify_finalists``)."""
    stages.start("measuring finalists")
    if stages.reused("finalists.json"):
        finalists = json.loads(run.path("finalists.json").read_text(encoding="utf-8"))
        chosen = outcome.history[next(row["index"] for row in finalists if row["chosen"])]
    else:
        chosen, finalists = verify_finalists(outcome, space, spec, target, budget, config.finalists)
        run.write_json("finalists.json", finalists)
    log.info("chosen: evaluation %d (%s)", chosen.index, "; ".join(
        f"#{r['index']} {r['measured_ms']:.4f} ms vs budget {r['budget_ms']:.4f} ms" for r in finalists))
    return chosen


def _export_done(artifacts: Path, policy: Policy) -> bool:
    """Whether ``artifacts`` holds a complete export of ``policy`` (manifest written last, checksums intact)."""
    if not (artifacts / MANIFEST_NAME).exists():
        return False
    manifest = load_manifest(artifacts)
    intact = not manifest.verify(artifacts) and manifest.policy == policy.to_dict()
    if intact and manifest.backend == "tensorrt" and not manifest.engine.get("built"):
        from .latency.reuse import engines_available

        # Exported where no engine could be built: on a machine that can build one, export again.
        intact = not engines_available()
    if intact:
        log.info("reusing the export in %s", artifacts)
    return intact


@contextmanager
def _run_log(run: RunDirectory) -> Iterator[None]:
    """Copy the package's log records (INFO and up) into ``run.log`` for the run's duration."""
    handler = logging.FileHandler(run.path("run.log"), encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    package = logging.getLogger("hirelc_deploy")
    level = package.level
    package.addHandler(handler)
    # Lowered to INFO at most: a --debug run (DEBUG inherited from the root) keeps its DEBUG records.
    package.setLevel(min(package.getEffectiveLevel(), logging.INFO))
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(level)
        handler.close()
