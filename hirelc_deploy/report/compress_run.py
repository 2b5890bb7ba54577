"""The report of a ``hirelc compress`` run, from the typed records ``jobs.compress`` writes (see its docstring).

Latencies come in two units: the search's table units (the calibrated table: ``candidates.jsonl``,
``budget_table_ms``, the finalists' and the policy's ``predicted_ms``) and milliseconds on the device, which
are the table units times ``table_drift`` from ``baseline.json``. Every figure and cell says which it shows,
and whether a value was predicted or measured.
"""

from __future__ import annotations

from pathlib import Path

from ..artifacts import MANIFEST_NAME, load_manifest
from ..latency.calibrate import PARTS, Calibration
from ..latency.table import load_table
from ..policy import Policy, load_policy
from ..records import (
    Baseline,
    Candidate,
    CompressConfig,
    CompressRunConfig,
    CompressSummary,
    FinalLatency,
    Finalists,
    SearchRecord,
    Status,
    TargetChecks,
)
from ..runs import COMPRESS_STAGES, FINALISTS_STAGE, RunFiles, sha256
from ..sensitivity import Sensitivity
from . import page, plots
from .page import Html, ms, pct
from .plots import BlockRow, Timed
from .profile_run import table_section
from .records import RunRecords


class CompressRun:
    """The records of one compress run, read and checked once."""

    def __init__(self, records: RunRecords):
        self.records = records
        self.run_config = records.load(RunFiles.CONFIG, CompressRunConfig.load)
        self.table = records.load(RunFiles.TABLE, load_table)
        self.sensitivity = records.load(RunFiles.SENSITIVITY, Sensitivity.load)
        self.calibration = records.load(RunFiles.CALIBRATION, Calibration.load)
        self.baseline = records.load(RunFiles.BASELINE, Baseline.load)
        self.candidates = records.candidates()
        self.search = records.load(RunFiles.SEARCH, SearchRecord.load)
        self.loop = records.load(RunFiles.FINALISTS, Finalists.load)
        self.finalists = self.loop.rows if self.loop else []
        self.final = records.load(RunFiles.FINAL_LATENCY, FinalLatency.load)
        self.policy = records.load(RunFiles.POLICY, load_policy)
        self.summary = records.load(RunFiles.SUMMARY, CompressSummary.load)
        self.status = records.load(RunFiles.STATUS, Status.load)
        self.checks = records.load(RunFiles.CHECKS, TargetChecks.load)

    @property
    def config(self) -> CompressConfig | None:
        """The run's configuration (None before config.json exists)."""
        return self.run_config.config if self.run_config else None

    @property
    def strategy(self) -> str:
        return self.config.strategy if self.config else "?"

    @property
    def predicted_only(self) -> bool:
        """Whether the run's result is a prediction (a target its backend cannot measure on this machine)."""
        return self.summary is not None and not self.summary.measured

    @property
    def budget_table_ms(self) -> float | None:
        """The budget in the search's (calibrated table) units."""
        return self.baseline.budget_table_ms if self.baseline else None

    @property
    def drift(self) -> float | None:
        """Measured over calibrated-table latency of the uncompressed model: table units to device ms."""
        return self.baseline.table_drift if self.baseline else None


def _point(row: Candidate) -> plots.Candidate:
    return plots.Candidate(row.strategy, row.index, row.predicted_ms, row.top1)


def _chosen(policy: Policy | None, strategy: str) -> plots.Candidate | None:
    """The chosen policy as a point of the search, when its notes say which evaluation it was."""
    if policy is None:
        return None
    notes = policy.notes
    if not isinstance(notes.get("evaluation"), int) or not isinstance(notes.get("proxy_top1"), (int, float)):
        return None  # policies not written by compress do not say where they sit in the search
    return plots.Candidate(str(notes.get("strategy", strategy)), notes["evaluation"], policy.predicted_latency_ms,
                           notes["proxy_top1"])


def stopped_stage(run: CompressRun) -> str:
    """Where an incomplete run (one without summary.json) stopped, or is still working."""
    # A backend that does not calibrate (its calibration record says skipped) neither times finalists nor
    # re-times the engine in fresh processes.
    skipped = {RunFiles.FINALISTS, RunFiles.FINAL_LATENCY} if run.calibration and run.calibration.skipped else set()
    stage = next(stage for stage in COMPRESS_STAGES
                 if any(name not in skipped and not run.records.has(name) for name in stage.records))
    text = stage.name
    if stage is FINALISTS_STAGE and RunFiles.FINALISTS in skipped:
        text = "the choice of the policy"
    if text == "the search":
        text += f": {len(run.candidates.rows)} of {run.config.evals if run.config else '?'} evaluations recorded"
    return text


def banners(run: CompressRun) -> list[Html]:
    """The lines at the top: completeness, a predicted table, the verdict."""
    out = []
    if run.summary is None:
        out.append(page.banner(f"incomplete run: no summary.json yet (stopped, or still running, during "
                               f"{stopped_stage(run)}). What the run recorded so far is shown below.", "warn"))
    if run.status and run.status.state != "complete":
        s = run.status
        error = f": {s.error}" if s.error else ""
        out.append(page.banner(f"status.json: {s.state} at stage “{s.stage}” (updated {s.updated}){error}",
                               "bad" if s.state == "failed" else "warn"))
    if run.candidates.truncated:
        out.append(page.banner("the last line of candidates.jsonl is cut short (by a kill, or still being "
                               "written) and is left out", "warn"))
    if run.table is not None and run.table.kind != "measured":
        out.append(page.banner(f"the latency table is {run.table.kind.upper()}, not measured on this device: "
                               "every latency derived from it is a prediction; only latencies labelled measured "
                               "were timed", "bad"))
    s = run.summary
    if run.predicted_only:
        out.append(page.banner(f"PREDICTED {ms(s.predicted_ms)} against a budget of {ms(s.budget_ms)}, "
                               f"nothing measured: {s.verdict}", "warn"))
    elif s:
        out.append(page.banner(f"measured {ms(s.measured_ms)} against a budget of {ms(s.budget_ms)}: {s.verdict}",
                               "good" if s.meets_budget else "bad"))
    return out


def header(run: CompressRun) -> Html:
    """Who, what, where and when."""
    r, c = run.run_config, run.config
    evals = f"{c.evals if c else '—'} allowed"
    if run.search:
        s = run.search
        evals += (f", {s.evals_used} used; {s.evaluation_seconds:.0f} s evaluating, {s.strategy_seconds:.0f} s "
                  f"in the strategy")
    table_kind = run.table.kind if run.table else "— (no latency_table.json)"
    source = run.summary.table if run.summary else None
    versions = {"hirelc-deploy": r.version, **r.versions} if r else {}
    return page.key_values([
        ("model", c.model if c else "—"),
        ("target", c.target if c else "—"),
        ("strategy", c.strategy if c else "—"),
        ("evaluations", evals),
        ("seed", c.seed if c else "—"),
        ("latency budget", c.latency_budget if c else "—"),
        ("device", page.fingerprint_text(r.fingerprint if r else None)),
        ("latencies measured on", (r.measured_on if r else "") or "—"),
        ("training data", _data_text(r.data if r else {})),
        ("latency table", f"{table_kind}" + (f"; {source}" if source else "")),
        ("created", r.created if r else "—"),
        ("versions", ", ".join(f"{k} {v}" for k, v in versions.items() if v) or "—"),
        ("run directory", str(run.records.root)),
    ])


def _data_text(plan: dict) -> str:
    """How the run read its images and where it trained (``config.json``'s ``data``; runs before it: —)."""
    if not plan:
        return "—"
    recipe = plan.get("preprocess", {})
    return (f"{plan.get('train_folder')}: {plan.get('loading')} ({plan.get('loading_reason')}), "
            f"{recipe.get('style')} recipe, {plan.get('workers')} workers; training device {plan.get('device')}")


def _rounds_text(values: list[float]) -> str:
    if len(values) < 2:
        return ""
    return f", min–max {min(values):.4f}–{max(values):.4f} ms over {len(values)} fresh processes"


def predicted_result_table(run: CompressRun) -> Html:
    """The final numbers of a run that could not measure latency (a TensorRT target, no GPU here)."""
    s = run.summary
    return page.key_values([
        ("budget", f"{ms(s.budget_ms)} ({s.budget} of the uncompressed model as the table predicts it)"),
        ("predicted latency", f"{ms(s.predicted_ms)}: PREDICTED by the {s.table_kind} table, not measured"),
        ("uncompressed, predicted", ms(s.predicted_uncompressed_ms)),
        ("speedup (predicted)", f"{s.speedup:.2f}×"),
        ("top-1 on the test split", f"{pct(s.top1_before)} → {pct(s.top1_after)} through {s.top1_through} "
                                    f"({s.test_images} test images)"),
        ("accuracy proxy of the policy", f"{pct(s.proxy_top1)} held-out top-1 before fine-tuning"),
        ("ONNX size", f"{page.megabytes(s.bytes_before)} → {page.megabytes(s.bytes_after)}"),
        ("engine", s.engine.get("reason", "not built")),
        ("verdict", s.verdict),
    ])


def result_table(run: CompressRun) -> Html:
    """The final numbers from summary.json."""
    if run.predicted_only:
        return predicted_result_table(run)
    s = run.summary
    at_search = f"; {ms(run.baseline.budget_ms)} when the search started" if run.baseline else ""
    size_ratio = f" ({s.bytes_before / s.bytes_after:.2f}× smaller)" if s.bytes_after else ""
    return page.key_values([
        ("budget", f"{ms(s.budget_ms)} ({s.budget} of the uncompressed model as measured at the end{at_search})"),
        ("predicted latency", f"{ms(s.predicted_ms)}: predicted, not measured ({s.predicted_with})"),
        ("measured latency", f"{ms(s.measured_ms)} median{_rounds_text(s.measured_rounds_ms)}"),
        ("uncompressed, measured", f"{ms(s.uncompressed_ms)} median{_rounds_text(s.uncompressed_rounds_ms)}"),
        ("speedup (measured)", f"{s.speedup:.2f}× (uncompressed / engine"
                               + (", median over processes)" if len(s.measured_rounds_ms) > 1 else ")")),
        ("top-1 on the test split", f"{pct(s.top1_before)} → {pct(s.top1_after)} ({s.test_images} test images, "
                                    f"through {s.top1_through})"),
        ("accuracy proxy of the policy", f"{pct(s.proxy_top1)} held-out top-1 before fine-tuning"),
        ("model size", f"{page.megabytes(s.bytes_before)} → {page.megabytes(s.bytes_after)}{size_ratio}"),
        ("verdict", s.verdict),
    ])


def _result_section(run: CompressRun) -> Html:
    if run.summary is None:
        return page.section("Result", page.tag("p", "No summary.json yet: nothing was exported and measured.",
                                               "note"))
    return page.section("Result", result_table(run))


def _pareto_section(run: CompressRun) -> Html | None:
    candidates = [_point(r) for r in run.candidates.rows]
    if not candidates:
        return None
    finalists = [plots.Candidate(run.strategy, f.index, f.predicted_ms, f.top1) for f in run.finalists]
    png = plots.pareto_figure(candidates, run.budget_table_ms, _chosen(run.policy, run.strategy), finalists)
    return page.section("Search: predicted latency vs accuracy proxy", page.figure(
        png, "predicted latency vs accuracy proxy",
        f"Each of the {len(candidates)} evaluated configurations: latency predicted by the calibrated table (table "
        "units; device ms are these times the drift in baseline.json), accuracy proxy = top-1 on held-out "
        "training images after BatchNorm recalibration, before fine-tuning. Step line: the Pareto front. "
        "Dashed: the budget in table units."))


def _policy_blocks(run: CompressRun) -> list[BlockRow]:
    relative = {b.name: b.relative for b in run.sensitivity.blocks} if run.sensitivity else {}
    full = {b.name: b.full_width for b in run.table.blocks} if run.table else {}
    if run.policy:
        return [BlockRow(b.name, b.width, full.get(b.name), b.precision, relative.get(b.name))
                for b in run.policy.blocks]
    return [BlockRow(name, relative=value) for name, value in relative.items()]


def _policy_section(run: CompressRun) -> Html | None:
    blocks = _policy_blocks(run)
    if not blocks:
        return None
    policy = ("The chosen policy per block: inner width kept (as a fraction of the full width, labelled "
              "kept/full), coloured by precision; hatched = block removed (only its shortcut runs). "
              if run.policy else "No policy.json yet. ")
    return page.section("Chosen policy and block sensitivity", page.figure(
        plots.policy_figure(blocks), "policy per block",
        f"{policy}Fisher sensitivity: Fisher information per parameter of each block relative to the most "
        "sensitive block."))


def _timed_finalists(run: CompressRun) -> list[Timed]:
    if run.drift is None:
        return []
    return [Timed(f"#{f.index}" + (" (chosen)" if f.chosen else ""),
                  f.predicted_ms * run.drift, f.measured_ms,
                  f.measured_ms - f.spread_ms / 2, f.measured_ms + f.spread_ms / 2)
            for f in run.finalists]


def _timed_final(summary: CompressSummary | None) -> Timed | None:
    if summary is None or not summary.measured:
        return None
    rounds = summary.measured_rounds_ms or [summary.measured_ms]
    return Timed("exported", summary.predicted_ms, summary.measured_ms, min(rounds), max(rounds))


def finalists_table(run: CompressRun) -> Html:
    """Every finalist: its proxy, its score after the short distillation where it had one, prediction and
    measurement; and how far distillation moved the ranking."""
    drift = run.drift or float("nan")
    table = page.table(
        ["round", "candidate", "proxy top-1", "after distillation", "predicted (table) ms", "predicted × drift ms",
         "measured ms", "IQR ms", "budget then (measured) ms", "meets budget", "chosen"],
        [[f.round, f.index, pct(f.top1), pct(f.distilled_top1) if f.distilled_top1 is not None else "—",
          f"{f.predicted_ms:.4f}", f"{f.predicted_ms * drift:.4f}", f"{f.measured_ms:.4f}", f"{f.spread_ms:.4f}",
          f"{f.budget_ms:.4f}", "yes" if f.meets_budget else "no", "✓" if f.chosen else ""] for f in run.finalists],
        [True, False, True, True, True, True, True, True, True, False, False])
    distilled = sum(f.distilled_top1 is not None for f in run.finalists)
    if not distilled:
        return table
    rho = run.loop.spearman
    return page.join([table, page.tag("p", (
        f"The {distilled} finalists that met the budget were each distilled for the same few steps and the best "
        f"after it exported. Spearman's rank correlation of the proxy and the distilled top-1: "
        + (f"{rho:+.2f}" if rho is not None else "undefined (a scoring ranked them all equal)") + "."))])


def _loop_section(run: CompressRun) -> Html | None:
    """The closed loop on the budget, round by round, when it took more than one round."""
    if not run.loop or len(run.loop.rounds) < 2:
        return None
    points = [plots.LoopPoint(f.round, f"#{f.index}", f.measured_ms / f.budget_ms, f.chosen) for f in run.finalists]
    rounds = page.table(
        ["round", "budget (table units) ms", "table correction (fp32 / int8 / boundaries)", "new evaluations",
         "a finalist met the budget"],
        [[r.round, f"{r.budget_table_ms:.4f}", " / ".join(f"{r.factors.get(k, 1.0):.3f}" for k in PARTS),
          r.new_evaluations, "yes" if r.met else "no"] for r in run.loop.rounds],
        [True, True, False, True, False])
    return page.section("Closed loop on the budget", page.figure(
        plots.loop_figure(points), "closed loop on the budget",
        "Each round's finalists timed on the device interleaved with the uncompressed model, as a ratio to the "
        "budget. After a round with no finalist under the budget, the table was corrected by every finalist "
        "measured so far and the finalists chosen again (searching again when no recorded candidate fitted)."),
        rounds)


def _processes_section(run: CompressRun) -> Html | None:
    """Every fresh process the exported engine was timed in, and the rule the verdict took from them."""
    if not run.final or len(run.final.engine_rounds_ms) < 2:
        return None
    final = run.final
    fast = final.fast or [True] * len(final.engine_rounds_ms)
    return page.section("Final timing, process by process", page.figure(
        plots.processes_figure(final.engine_rounds_ms, final.uncompressed_rounds_ms, fast), "final timing",
        f"The exported engine and the uncompressed model, timed interleaved in each fresh process. The verdict "
        f"takes the {final.rule or 'median over processes'}."))


def _latency_section(run: CompressRun) -> Html | None:
    finalists, final = _timed_finalists(run), _timed_final(run.summary)
    if not finalists and final is None:
        return None
    budget = run.summary.budget_ms if run.summary else (run.finalists[0].budget_ms if run.finalists else None)
    png = plots.latency_check_figure(finalists, final, budget)
    how = ("x: predicted latency (calibrated table × drift from baseline.json), y: measured latency. Finalists "
           "were timed once, interleaved with the uncompressed model, before fine-tuning; the exported engine "
           "was timed in several fresh processes" if run.finalists else
           "the exported engine was timed interleaved with the uncompressed one, against its table as it is")
    parts = [page.figure(png, "predicted vs measured latency",
                         f"Engines timed for real: {how}. The budget line is the one the verdict uses (it moves "
                         "with the measured uncompressed latency).")]
    if run.finalists:
        parts.append(finalists_table(run))
    return page.section("Predicted vs measured latency", *parts)


def _progress_section(run: CompressRun) -> Html | None:
    candidates = [_point(r) for r in run.candidates.rows]
    if not candidates:
        return None
    over = sum(run.budget_table_ms is not None and c.predicted_ms > run.budget_table_ms for c in candidates)
    return page.section("Search progress", page.figure(
        plots.progress_figure(candidates, run.budget_table_ms), "search progress",
        f"Accuracy proxy of each evaluation in the order evaluated, and the best so far among those within the "
        f"budget (predicted). {over} of {len(candidates)} evaluations are predicted over the budget."))


def _recorded_checksums(artifacts: Path) -> dict[str, str]:
    """File name -> SHA-256 as the export's manifest recorded them (empty without a manifest)."""
    if not (artifacts / MANIFEST_NAME).is_file():
        return {}
    return {name: info["sha256"] for name, info in load_manifest(artifacts).files.items()}


def artifacts_table(artifacts: Path) -> Html:
    """Every file under artifacts/ with its size and SHA-256, checked against the manifest's record."""
    recorded = _recorded_checksums(artifacts)
    files = sorted(p.relative_to(artifacts).as_posix() for p in artifacts.rglob("*") if p.is_file())
    rows = []
    for name in sorted(set(files) | set(recorded)):
        path = artifacts / name
        if not path.is_file():
            rows.append([name, "missing", Html(f"<code>{page.esc(recorded[name])}</code>"), "MISSING (in manifest)"])
            continue
        digest = sha256(path)
        check = ("not in the manifest" if name not in recorded else
                 "matches the manifest" if recorded[name] == digest else "DIFFERS from the manifest")
        rows.append([name, f"{path.stat().st_size:,} bytes", Html(f"<code>{page.esc(digest)}</code>"), check])
    return page.table(["file", "size", "sha256", "check"], rows, [False, True, False, False])


def _checks_section(run: CompressRun) -> Html | None:
    if run.checks is None:
        return None
    return page.section(f"The policy on other targets (budget {run.checks.budget})", page.table(
        ["target", "measured on", "batch", "engine ms", "uncompressed ms", "speedup", "budget ms",
         "measured / budget", "verdict"],
        [[c.target, c.measured_on, c.batch_size, f"{c.latency.engine_ms:.4f}", f"{c.latency.uncompressed_ms:.4f}",
          f"{c.latency.speedup:.2f}x", f"{c.budget_ms:.4f}", f"{c.budget_ratio:.3f}", c.verdict]
         for c in run.checks.checks],
        [False, False, True, True, True, True, True, True, False]),
        page.tag("p", "The fine-tuned model of this run exported once more for each target (its batch and "
                 "backend) and timed on its device against its own uncompressed model, process by process like "
                 "the verdict above."))


def _artifacts_section(run: CompressRun) -> Html | None:
    artifacts = run.records.path(RunFiles.ARTIFACTS)
    if not artifacts.is_dir():
        return None
    return page.section("Artifacts", artifacts_table(artifacts))


def _table_section(run: CompressRun) -> Html | None:
    if run.table is None:
        return None
    factors = run.calibration.factors if run.calibration else {}
    note = "".join(f" {k} ×{v:.3f}," for k, v in factors.items() if isinstance(v, (int, float))).rstrip(",")
    return table_section(run.table, f" The search used this table calibrated against real engines:{note}."
                         if note else "")


def compress_report(records: RunRecords) -> str:
    """The HTML report of a compress run (complete or not)."""
    run = CompressRun(records)
    sections = [_result_section(run), _checks_section(run), _pareto_section(run), _policy_section(run),
                _latency_section(run), _loop_section(run), _processes_section(run), _progress_section(run),
                _table_section(run), _artifacts_section(run)]
    model, target = (run.config.model, run.config.target) if run.config else ("?", "?")
    return page.document(f"hirelc compress: {model} on {target}", "run report, rebuilt from the run directory",
                         [*banners(run), header(run), *(s for s in sections if s is not None)])

