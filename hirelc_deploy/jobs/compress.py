"""``hirelc compress``: from a trained model and a latency budget to a measured, deployable engine.

table (reused or measured) -> Fisher sensitivity -> table calibrated and uncompressed latency measured -> search
-> finalists measured -> best policy applied for real (pruned, BatchNorm recalibrated, distilled) -> exported ->
engine re-benchmarked against the uncompressed one -> summary. Every record lands in the run directory
(``runs.RunFiles``; the stages and what each writes: ``runs.COMPRESS_STAGES``).

The search predicts latency from the table. On a backend that calibrates (``Backend.calibrates``: ONNX Runtime),
the table is first corrected against a few engines timed now, and before anything is fine-tuned the few best
policies are built and timed for real against the uncompressed model; the best one whose measured latency meets
the budget is exported, and the exported engine is timed over several fresh processes for the verdict. Other
backends use their table as it is and export the search's best policy. Where the target's backend cannot measure
on this machine (TensorRT without a GPU) the summary is the table's prediction, labelled PREDICTED everywhere.
"""

from __future__ import annotations

import logging
import platform
import tempfile
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnxruntime
import torch

from .. import __version__
from ..apply import DistillConfig, check_minutes, parse_epochs
from ..budget import Budget, ResolvedBudget, parse_budget
from ..compute import resolve_device
from ..devices import leased_backend
from ..data import Normalize
from ..errors import InputError
from ..artifacts import load_manifest
from ..latency.calibrate import Calibration, fit
from ..latency.table import LatencyTable, load_table
from ..models.registry import absolute_reference, resolve_model
from ..models.checkpoints import resolve_weights
from ..pipeline import (DataConfig, PreparedData, check_dataset, export_policy, finetune_image_count,
                        finetune_note, load_model, open_test_images, plan_finetune, prepare_data,
                        sensitivity_of)
from ..policy import Policy
from ..precision import Precision
from ..progress import Reporter, SilentReporter
from ..records import (Baseline, BenchResult, CompressConfig, CompressRunConfig, CompressSummary,
                       FinalLatency, Finalists, ModelRef, TargetChecks, annotated_fields, conform)
from ..report import write_report
from ..resumption import check_same_run, resumed_config
from ..runs import (BENCH_STAGE, CALIBRATION_STAGE, CHECK_STAGE, EXPORT_STAGE, FINALISTS_STAGE, SEARCH_STAGE,
                   SENSITIVITY_STAGE, TABLE_STAGE, RunDirectory, RunFiles, default_run_dir, now, run_log, sha256)
from ..search import SearchSpace
from ..search.context import Evaluation
from ..search.evaluate import EvalData, EvalResult, Evaluator
from ..search.executors import Executor, LocalExecutor
from ..search.prior import DamageModel
from ..search.registry import get_strategy
from ..search.run import SearchOutcome
from ..search.wall import repair
from ..sensitivity import Sensitivity
from ..settings import cache_dir, tables_dir
from ..targets import Backend, Target, backend_of, current_fingerprint, load_target
from ..verdict import judge, measure_final, verdict, verdict_processes
from .checks import check_targets, load_check_targets
from .finalists import BudgetNotMet, close_the_loop
from .searching import checkpointed_search
from .profile import ensure_table
from .stages import Stages
from .rerank import distilled_scores, finalist_steps

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompressResult:
    """A finished compress run: its summary and where its records and report are."""

    summary: CompressSummary
    run_dir: Path
    report: Path
    checks: TargetChecks | None = None  # the policy on the --check-targets (``jobs/checks.py``)


def compress(model: str | ModelRef, weights: str | Path, data: str | Path, target: str | Path,
             latency_budget: str, *, run_dir: Path | None = None, reporter: Reporter | None = None,
             executor: Executor | None = None, **options) -> CompressResult:
    """Compress a trained model for a latency budget: search, apply for real, fine-tune, export, re-measure.

    ``model`` is a zoo name or a ``ModelRef`` to a factory (``file.py:factory`` with its arguments, input shape
    and normalisation). ``options`` are the other fields of ``CompressConfig`` (strategy, evals, finetune_epochs (a
    number or "auto"), finetune_minutes, qat, finetune_images, heldout_images, test_per_class, finalists, seed,
    table, and ``data_options``: a
    ``DataOptions`` with the device and how images are read), with the CLI's defaults. The run
    directory (default ``runs/STAMP-compress-MODEL-TARGET``) gets every record and ``report.html``. ``executor``
    (``search.executors.make_executor``) runs the candidate evaluations: this process by default, or Ray; the
    result is the same.
    """
    ref = model if isinstance(model, ModelRef) else ModelRef(str(model))
    if "finetune_epochs" in options:
        options["finetune_epochs"] = parse_epochs(options["finetune_epochs"])
    fields = {"model": ref.model, "model_args": dict(ref.args), "input_shape": ref.input_shape,
              "mean": ref.mean, "std": ref.std}
    config = CompressConfig(**_paths_absolute({**fields, "weights": weights, "data": data, "target": target,
                                               "latency_budget": latency_budget, **options}))
    spec = resolve_model(config.model_ref)
    return run_compress(config, run_dir or default_run_dir("compress", spec.key, Path(str(target)).stem), reporter,
                        executor=executor)


def resume(run_dir: Path, reporter: Reporter | None = None, executor: Executor | None = None,
           **given) -> CompressResult:
    """Continue the compress run in ``run_dir`` after a crash or kill: finished stages and evaluations are
    reused, and the search ends where an uninterrupted run would. Any ``CompressConfig`` field ``given`` must
    match the run's; the executor need not be the one the run started with."""
    return run_compress(resumed_config(run_dir, _paths_absolute(given)), run_dir, reporter, resume=True,
                        executor=executor)


PATH_FIELDS = ("weights", "data", "target", "table")


def _paths_absolute(values: dict) -> dict:
    """``CompressConfig`` values with every existing path made absolute text (the run records where its inputs
    were, wherever it is resumed from); a name such as cpu-ort-1t, or a missing path reported later, unchanged."""
    def absolute(value):
        return str(Path(value).resolve()) if Path(value).exists() else str(value)

    made = {k: absolute(v) if k in PATH_FIELDS and v is not None else v for k, v in values.items()}
    if made.get("check_targets"):
        made["check_targets"] = [absolute(v) for v in made["check_targets"]]
    if made.get("model"):
        made["model"] = absolute_reference(str(made["model"]))
    return made


def check_config(config: CompressConfig) -> Budget:
    """Flag errors in ``config`` before any work starts; returns its budget, parsed (the only parse of a run)."""
    for field, hint in annotated_fields(CompressConfig):
        value = getattr(config, field.name)
        conform(asdict(value) if is_dataclass(value) else value, hint, "--" + field.name.replace("_", "-"))
    resolve_model(config.model_ref)
    get_strategy(config.strategy)
    budget = parse_budget(config.latency_budget)
    for flag, value, low in (("--evals", config.evals, 1), ("--finalists", config.finalists, 1),
                             ("--finetune-images", config.finetune_images, 1),
                             ("--finalist-images", config.finalist_images, 0)):
        if value < low:
            raise InputError(f"{flag}: must be at least {low}, got {value}")
    if parse_epochs(config.finetune_epochs) != config.finetune_epochs:
        raise InputError(f"--finetune-epochs: expected a number or 'auto', got '{config.finetune_epochs}'")
    check_minutes(config.finetune_minutes)
    return budget


def calibrated_space(table: LatencyTable, spec, target: Target, sensitivity, budget: Budget, backend: Backend
                     ) -> tuple[SearchSpace, Calibration, float]:
    """The search space over ``table`` calibrated against real engines (see ``latency/calibrate.py``), the
    calibration, and the uncompressed model's measured latency (the first engine timed).

    The engines are the uncompressed model, the all-INT8 one, the fastest configuration, and the Fisher-greedy
    policies for the budget with INT8 judged cheap and dear: the kinds of configuration the search will weigh.
    """
    raw = SearchSpace(table, target.precisions)
    prior = DamageModel(raw, sensitivity)
    probe = min(max(budget.ms_against(raw.uncompressed_ms), raw.fastest_ms), raw.uncompressed_ms)
    candidates = [raw.full_index, raw.fastest_index]
    if Precision.INT8 in raw.precisions:
        candidates.insert(1, np.array([raw.index(b, int(w), Precision.INT8) for b, w in enumerate(raw.full_width)]))
    candidates += [repair(raw, prior.weighted(int8, 1.0), raw.full_index, probe) for int8 in (1.0, 100.0)]
    unique = dict.fromkeys(tuple(int(v) for v in c) for c in candidates)
    configs = [raw.decode(x) for x in unique]
    measured = [t.median_ms for t in backend.time_configs(spec, target, configs)]
    calibration = fit(table, configs, measured)
    return SearchSpace(calibration.apply(table), target.precisions), calibration, measured[0]


def final_latency(backend: Backend, artifacts: Path, target: Target, first: BenchResult,
                  on_round: Callable[[], None] | None = None) -> FinalLatency:
    """The exported engine against its uncompressed baseline over ``verdict_processes`` or more fresh processes,
    by the fast-state rule of ``verdict.py``; ``first`` (the benchmark's own timing) is the first process."""
    return measure_final(lambda: backend.time_export(artifacts, target),
                         (first.latency_ms["median_ms"], first.baseline_latency_ms["median_ms"]),
                         verdict_processes(backend, target), on_round)


def run_compress(config: CompressConfig, run_dir: Path, reporter: Reporter | None = None,
                 resume: bool = False, executor: Executor | None = None) -> CompressResult:
    """Run the whole compression workflow for ``config`` in ``run_dir``: the summary is also written to
    ``summary.json``, and ``report.html`` is written at the end.

    With ``resume``, ``run_dir`` must hold a run of the same configuration on this device; every record it
    holds is reused and the search replays its recorded evaluations (``resumption.py``). Every input is checked
    before the run directory is written to.
    """
    job = _CompressJob(config, RunDirectory(run_dir, create=False), reporter or SilentReporter(), resume,
                       executor or LocalExecutor())
    job.run.create()
    with run_log(job.run):
        try:
            summary = job.execute()
        except BaseException as exc:
            job.stages.failed(exc)
            raise
        job.stages.finished()
    return CompressResult(summary, job.run.root, write_report(job.run.root), job.checks)


class _CompressJob:
    """One compress run: its inputs, checked and loaded on construction, and one method per stage."""

    def __init__(self, config: CompressConfig, run: RunDirectory, reporter: Reporter, resume: bool,
                 executor: Executor):
        self.config, self.run, self.reporter, self.resume = config, run, reporter, resume
        self.budget = check_config(config)
        self.spec, self.target = resolve_model(config.model_ref), load_target(config.target)
        self.executor = executor
        self.others = load_check_targets(config.check_targets, self.target)
        self.student, self.checks = None, None
        self.backend = leased_backend(backend_of(self.target), self.target, getattr(executor, "ray", None))
        self.weights = resolve_weights(config.weights, cache_dir())
        self.device = resolve_device(config.data_options.device)
        self.teacher = load_model(self.spec, self.weights).to(self.device)
        check_dataset(self.spec, Path(config.data), opened=("test",))
        self._check_run_dir()
        # The train split is listed once, here, before the table (which may take minutes to profile) so that a
        # bad train folder fails fast; preparing it draws nothing from torch's RNG, seeded below for the search.
        self.data_config = DataConfig(seed=config.seed, train_images=config.finetune_images,
                                      heldout_images=config.heldout_images, options=config.data_options)
        self.data: PreparedData = prepare_data(self.spec, Path(config.data), self.data_config, reporter,
                                               self.device)
        if resume:
            self.table, self.table_source = load_table(run.path(RunFiles.TABLE)), \
                f"from the resumed run ({run.path(RunFiles.TABLE)})"
        else:
            reporter.phase(TABLE_STAGE.name)
            self.table, self.table_source = ensure_table(
                self.spec, self.target, tables_dir(), Path(config.table) if config.table else None,
                progress=lambda *_: reporter.advance(), backend=self.backend)
        # A fraction the table cannot meet is refused before anything is measured; an absolute budget waits for
        # the uncompressed model to be timed (the machine may run faster or slower than when it was profiled).
        if self.budget.relative:
            table_space = SearchSpace(self.table, self.target.precisions)
            self.budget.resolve(table_space.uncompressed_ms, table_space.uncompressed_ms, table_space.fastest_ms,
                                "predicted by the table")
        torch.manual_seed(config.seed)
        self.stages = Stages(run, reporter)

    def _check_run_dir(self) -> None:
        """Refuse, before anything is written, a run directory that holds another run (or, resuming, a
        different one)."""
        if self.resume:
            check_same_run(self.run.root, self.config, sha256(self.weights), current_fingerprint(self.target))
        elif self.run.has(RunFiles.CONFIG):
            raise InputError(f"--run-dir {self.run.root}: holds a run already; continue it with --resume "
                             f"{self.run.root} or choose another directory")

    def execute(self) -> CompressSummary:
        if self.resume:
            log.info("resuming the run in %s", self.run.root)
        else:
            self._write_config()
        self.reporter.note(f"latency table {self.table_source}")
        log.info("latency table %s", self.table_source)
        sensitivity = self.sensitivity()
        space, resolved = self.baseline(sensitivity)
        outcome = self.search(space, sensitivity, resolved)
        chosen = self.choose(outcome, space, sensitivity, resolved)
        policy = space.policy(chosen.options, strategy=self.config.strategy, evaluation=chosen.index,
                              proxy_top1=chosen.result.top1, proxy_agreement=chosen.result.agreement)
        policy.save(self.run.path(RunFiles.POLICY))
        self.export(policy, sensitivity)
        summary = self.benchmark(policy, space, resolved)
        if self.others:
            self.check(policy, sensitivity)
        return summary

    def _write_config(self) -> None:
        # The table before the configuration: a run directory with a config.json always has its table.
        self.table.save(self.run.path(RunFiles.TABLE))
        CompressRunConfig(
            config=self.config, weights_file=str(self.weights), weights_sha256=sha256(self.weights),
            run_dir=str(self.run.root), version=__version__, created=now(),
            fingerprint=current_fingerprint(self.target).to_dict(),
            versions={"python": platform.python_version(), "torch": torch.__version__,
                      "onnxruntime": onnxruntime.__version__},
            data=asdict(self.data.plan), measured_on=self.backend.measured_on(self.target),
        ).save(self.run.path(RunFiles.CONFIG))

    def sensitivity(self) -> Sensitivity:
        self.stages.start(SENSITIVITY_STAGE, self.data_config.fisher_images)
        if self.stages.reused(RunFiles.SENSITIVITY):
            return Sensitivity.load(self.run.path(RunFiles.SENSITIVITY))
        sensitivity = sensitivity_of(self.teacher, self.spec, self.data, self.data_config,
                                     on_sample=self.reporter.advance)
        sensitivity.save(self.run.path(RunFiles.SENSITIVITY))
        return sensitivity

    def baseline(self, sensitivity: Sensitivity) -> tuple[SearchSpace, ResolvedBudget]:
        """The search space (the table, calibrated where the backend calibrates) and the budget resolved
        against the uncompressed model on the device (measured; predicted where nothing is measured)."""
        calibrates = self.backend.calibrates
        self.stages.start(CALIBRATION_STAGE, detail="" if calibrates else
                          f"skipped: {self.target.backend} tables are used as they are; engines are timed after "
                          "export")
        if self.stages.reused(RunFiles.BASELINE):
            space = SearchSpace(load_table(self.run.path(RunFiles.TABLE_CALIBRATED)), self.target.precisions)
            baseline = Baseline.load(self.run.path(RunFiles.BASELINE))
            uncompressed_ms, self.table_source = baseline.uncompressed_ms, baseline.table_source
        elif calibrates:
            space, calibration, uncompressed_ms = calibrated_space(self.table, self.spec, self.target, sensitivity,
                                                                   self.budget, self.backend)
            calibration.save(self.run.path(RunFiles.CALIBRATION))
            log.info("table calibrated against %d engines: %s", len(calibration.points), calibration.factors)
            space.table.save(self.run.path(RunFiles.TABLE_CALIBRATED))
        else:
            space = SearchSpace(self.table, self.target.precisions)
            Calibration({}, skipped=f"{self.target.backend} target: the table is used as it is").save(
                self.run.path(RunFiles.CALIBRATION))
            self.table.save(self.run.path(RunFiles.TABLE_CALIBRATED))
            uncompressed_ms = space.uncompressed_ms
        resolved = self.budget.resolve(uncompressed_ms, space.uncompressed_ms, space.fastest_ms,
                                       "measured" if calibrates else "predicted by the table")
        Baseline(uncompressed_ms, space.uncompressed_ms, resolved.drift, resolved.ms, resolved.table_ms,
                 self.table_source).save(self.run.path(RunFiles.BASELINE))
        return space, resolved

    def search(self, space: SearchSpace, sensitivity: Sensitivity, resolved: ResolvedBudget) -> SearchOutcome:
        self.evaluator = Evaluator(self.teacher, self.spec.blocks(), self.spec.input_shape,
                                   EvalData.from_prepared(self.data), sensitivity, executor=self.executor)
        log.info("candidate evaluations: %s", self.executor.describe())
        self.stages.start(SEARCH_STAGE, self.config.evals, self.config.strategy)
        return checkpointed_search(self.config, self.run, space, sensitivity, self.evaluator, resolved.table_ms,
                                   self.reporter)

    def choose(self, outcome: SearchOutcome, space: SearchSpace, sensitivity: Sensitivity,
               resolved: ResolvedBudget) -> Evaluation:
        """The evaluation to export: the finalist the closed loop on the budget chose (``jobs/finalists.py``, or
        ``finalists.json`` from before), or the search's best where the backend times nothing before export."""
        if not self.backend.calibrates:
            return outcome.best
        self.stages.start(FINALISTS_STAGE)
        if self.stages.reused(RunFiles.FINALISTS):
            finalists = Finalists.load(self.run.path(RunFiles.FINALISTS))
            row = finalists.chosen
            key = (tuple(row.widths), tuple(row.precisions))
            chosen = Evaluation(row.index, tuple(int(v) for v in space.encode(*key)), *key, row.predicted_ms,
                                self.evaluator.cache[key], True)
        else:
            def search_again(corrected: SearchSpace, budget_table_ms: float, round_index: int) -> list[Evaluation]:
                self.stages.start(FINALISTS_STAGE, max(self.config.finalists, self.config.evals // 2),
                                  f"round {round_index}: searching the corrected table")
                return checkpointed_search(self.config, self.run, corrected, sensitivity, self.evaluator,
                                           budget_table_ms, self.reporter, round_index).history

            def rank(met: list[Evaluation]) -> list[EvalResult]:
                steps = finalist_steps(self.config.finalist_images, len(self.data.train), self.data_config.batch_size)
                self.stages.start(FINALISTS_STAGE, len(met), f"distilling {len(met)} that met the budget, "
                                  f"{steps} steps each")
                seed, batch = self.data_config.seed, self.data_config.batch_size
                return distilled_scores(met, self.evaluator, self.teacher, lambda: self.data.train_batches(
                    shuffle=True, augment=True, seed=seed, batch_size=batch), steps, self.reporter.advance)

            try:
                chosen, finalists = close_the_loop(outcome.history, space, self.spec, self.target, self.budget,
                                                   resolved.table_ms, self.config.finalists, self.backend,
                                                   search_again, rank if self.config.finalist_images else None)
            except BudgetNotMet as missed:
                missed.finalists.save(self.run.path(RunFiles.FINALISTS))
                raise
            finalists.save(self.run.path(RunFiles.FINALISTS))
        log.info("chosen: candidate %d after %d round(s) of finalists", chosen.index, len(finalists.rounds))
        return chosen

    def export(self, policy: Policy, sensitivity: Sensitivity) -> None:
        plan = plan_finetune(self.spec, policy, self.config.finetune_epochs)
        self.stages.start(EXPORT_STAGE, finetune_image_count(self.data, self.data_config, plan.epochs))
        artifacts = self.run.path(RunFiles.ARTIFACTS)
        if not self._export_done(artifacts, policy):
            self.student = self._export_to(artifacts, policy, sensitivity)

    def _export_to(self, artifacts: Path, policy: Policy, sensitivity: Sensitivity) -> torch.nn.Module:
        student, manifest = export_policy(
            self.teacher, self.spec, policy, self.target, self.data, self.data_config,
            DistillConfig(epochs=self.config.finetune_epochs, max_minutes=self.config.finetune_minutes,
                          fake_quant=self.config.qat),
            artifacts, self.table.fingerprint, sensitivity, "fisher", lambda *_: self.reporter.advance())
        self.reporter.note(finetune_note(manifest.finetune))
        return student

    def check(self, policy: Policy, sensitivity: Sensitivity) -> None:
        """The policy on every ``--check-targets`` target, against the same budget (``checks.json``)."""
        self.stages.start(CHECK_STAGE, sum(verdict_processes(backend_of(t), t) for t in self.others),
                          ", ".join(t.name for t in self.others))
        if self.stages.reused(RunFiles.CHECKS):
            self.checks = TargetChecks.load(self.run.path(RunFiles.CHECKS))
            return
        if self.student is None:
            # A resumed run whose export was reused: the student is not kept on disk, so it is fine-tuned again
            # (same seed and recipe) into a scratch directory; the run's own artifacts are left as they are.
            with tempfile.TemporaryDirectory() as scratch:
                self.student = self._export_to(Path(scratch), policy, sensitivity)
        finetune = load_manifest(self.run.path(RunFiles.ARTIFACTS)).finetune
        self.checks = check_targets(self.student, self.teacher, self.spec, policy, self.others, self.budget,
                                    self.data, self.data_config, finetune,
                                    self.run.path(RunFiles.CHECK_ARTIFACTS), getattr(self.executor, "ray", None),
                                    self.reporter.advance)
        self.checks.save(self.run.path(RunFiles.CHECKS))

    def _export_done(self, artifacts: Path, policy: Policy) -> bool:
        """Whether ``artifacts`` holds a complete export of ``policy`` (manifest written last, checksums intact)
        that the backend can use here."""
        if not self.run.has(RunFiles.MANIFEST):
            return False
        manifest = load_manifest(artifacts)
        intact = (not manifest.verify(artifacts) and manifest.policy == policy.to_dict()
                  and self.backend.artifact_reusable(manifest))
        if intact:
            log.info("reusing the export in %s", artifacts)
        return intact

    def benchmark(self, policy: Policy, space: SearchSpace, resolved: ResolvedBudget) -> CompressSummary:
        """Benchmark the export against the uncompressed model and write the summary: measured where the backend
        can measure here (over ``verdict_processes`` measurements), otherwise the table's prediction, labelled so."""
        rounds = verdict_processes(self.backend, self.target)
        self.stages.start(BENCH_STAGE, rounds)
        artifacts = self.run.path(RunFiles.ARTIFACTS)
        if self.stages.reused(RunFiles.BENCH):
            result = BenchResult.load(self.run.path(RunFiles.BENCH))
        else:
            test = open_test_images(self.spec.input_shape, Path(self.config.data), self.config.data_options,
                                    self.config.test_per_class, self.data.bad)
            result = self.backend.bench_export(artifacts, self.target, test, Normalize(self.spec.mean, self.spec.std))
            result.save(self.run.path(RunFiles.BENCH))
        self.reporter.advance()
        latency = None
        if result.measured:
            if self.stages.reused(RunFiles.FINAL_LATENCY):
                latency = FinalLatency.load(self.run.path(RunFiles.FINAL_LATENCY))
            else:
                latency = final_latency(self.backend, artifacts, self.target, result, self.reporter.advance)
                latency.save(self.run.path(RunFiles.FINAL_LATENCY))
        summary = self._summary(policy, space, resolved, result, latency)
        summary.save(self.run.path(RunFiles.SUMMARY))
        log.info("%s %.4f ms against a budget of %.4f ms: %s", summary.latency_kind,
                 summary.measured_ms if summary.measured else summary.predicted_ms, summary.budget_ms,
                 summary.verdict)
        return summary

    def _summary(self, policy: Policy, space: SearchSpace, resolved: ResolvedBudget, result: BenchResult,
                 latency: FinalLatency | None) -> CompressSummary:
        predicted_ms = policy.predicted_latency_ms * resolved.drift
        if latency is not None:
            budget_ms, ratio, text = judge(self.budget, latency)
            speedup = latency.speedup
        else:
            budget_ms = self.budget.ms_against(resolved.uncompressed_ms)
            ratio = predicted_ms / budget_ms
            text = verdict(ratio, f"{self.table.kind} table; not measured: {result.not_measured}")
            speedup = resolved.uncompressed_ms / predicted_ms
        return CompressSummary(
            model=self.spec.name, target=self.config.target, strategy=self.config.strategy,
            backend=self.target.backend, latency_kind="measured" if latency else "predicted",
            table_kind=self.table.kind, table=self.table_source, budget=self.budget.text, budget_ms=budget_ms,
            budget_ratio=ratio, meets_budget=ratio <= 1.0, verdict=text, table_drift=resolved.drift,
            uncompressed_ms_at_start=resolved.uncompressed_ms, predicted_ms=predicted_ms,
            predicted_with=(f"calibrated table x drift {resolved.drift:.3f}" if self.backend.calibrates
                            else f"{self.table.kind} table as it is"),
            predicted_table_ms=policy.predicted_latency_ms,
            predicted_uncompressed_ms=space.uncompressed_ms * resolved.drift,
            measured_ms=latency.engine_ms if latency else None,
            measured_rounds_ms=latency.engine_rounds_ms if latency else [],
            uncompressed_ms=latency.uncompressed_ms if latency else None,
            uncompressed_rounds_ms=latency.uncompressed_rounds_ms if latency else [], speedup=speedup,
            top1_before=result.baseline_top1, top1_after=result.top1, test_images=result.top1_images,
            top1_through=result.top1_through, bytes_before=result.baseline_file_bytes, bytes_after=result.file_bytes,
            proxy_top1=policy.notes.get("proxy_top1"), engine=result.engine,
            bad_images=sorted(self.data.bad.files))
