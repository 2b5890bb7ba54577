"""The report of a ``hirelc compress`` run, from the records ``compress.compress`` writes (see its docstring).

Latencies come in two units: the search's table units (the calibrated table: ``candidates.jsonl``,
``budget_table_ms``, the finalists' and the policy's ``predicted_ms``) and milliseconds on the device, which
are the table units times ``table_drift`` from ``baseline.json``. Every figure and cell says which it shows,
and whether a value was predicted or measured.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..export import MANIFEST_NAME
from ..latency.table import load_table
from ..policy import Policy, load_policy
from ..runs import read_json_object, sha256
from . import page, plots
from .page import Html, ms, pct
from .plots import BlockRow, Candidate, Timed
from .profile_run import table_section
from .records import CONFIG, NUMBER, NUMBERS, RunRecords, require, require_each

CANDIDATE_FIELDS = {"index": int, "predicted_ms": NUMBER, "top1": NUMBER}
BASELINE_FIELDS = {"uncompressed_ms": NUMBER, "table_drift": NUMBER, "budget_ms": NUMBER, "budget_table_ms": NUMBER}
FINALIST_FIELDS = {"index": int, "top1": NUMBER, "predicted_ms": NUMBER, "measured_ms": NUMBER,
                   "spread_ms": NUMBER, "budget_ms": NUMBER, "meets_budget": bool}
SUMMARY_FIELDS = {"budget_ms": NUMBER, "predicted_ms": NUMBER, "speedup": NUMBER, "verdict": str,
                  "meets_budget": bool, "top1_before": NUMBER, "top1_after": NUMBER, "bytes_before": int,
                  "bytes_after": int, "table_drift": NUMBER}
# A TensorRT run on a machine without a GPU measures no latency: its summary says latency_kind "predicted".
MEASURED_SUMMARY_FIELDS = {"measured_ms": NUMBER, "measured_rounds_ms": NUMBERS, "uncompressed_ms": NUMBER,
                           "uncompressed_rounds_ms": NUMBERS}
SENSITIVITY_BLOCK_FIELDS = {"name": str, "relative": NUMBER}

# The records compress writes, in order, each with the stage that runs before it is written: the first one
# missing says where an incomplete run stopped.
STAGES = (
    ("latency_table.json", "the latency table"),
    ("sensitivity.json", "the Fisher sensitivity"),
    ("calibration.json", "the calibration of the table against real engines"),
    ("baseline.json", "the budget check after calibration"),
    ("search.json", "the search"),
    ("finalists.json", "the timing of the finalists"),
    ("policy.json", "the choice of the policy"),
    ("artifacts/manifest.json", "fine-tuning and export"),
    ("bench.json", "the benchmark of the engine"),
    ("final_latency.json", "the timing of the engine in fresh processes"),
    ("summary.json", "writing the summary"),
)


class CompressRun:
    """The records of one compress run, read and checked once."""

    def __init__(self, records: RunRecords):
        self.records = records
        self.config = records.object(CONFIG, "run configuration") or {}
        self.table = load_table(records.path("latency_table.json")) if records.has("latency_table.json") else None
        self.sensitivity = records.object("sensitivity.json", "sensitivity file", {"blocks": list})
        if self.sensitivity:
            require_each(self.sensitivity["blocks"], SENSITIVITY_BLOCK_FIELDS, str(records.path("sensitivity.json")))
        self.calibration = records.object("calibration.json", "calibration record", {"factors": dict})
        self.baseline = records.object("baseline.json", "baseline record", BASELINE_FIELDS)
        self.candidates = records.candidates(CANDIDATE_FIELDS)
        self.search = records.object("search.json", "search record")
        self.finalists = records.rows("finalists.json", FINALIST_FIELDS) or []
        self.policy = load_policy(records.path("policy.json")) if records.has("policy.json") else None
        self.summary = records.object("summary.json", "run summary", SUMMARY_FIELDS)
        if self.summary and not self.predicted_only:
            require(self.summary, MEASURED_SUMMARY_FIELDS, str(records.path("summary.json")))
        self.status = records.object("status.json", "run status", {"state": str, "stage": str})

    @property
    def predicted_only(self) -> bool:
        """Whether the run's result is a prediction (a TensorRT target on a machine without a GPU)."""
        return bool(self.summary) and self.summary.get("latency_kind") == "predicted"

    @property
    def budget_table_ms(self) -> float | None:
        """The budget in the search's (calibrated table) units."""
        return self.baseline["budget_table_ms"] if self.baseline else None

    @property
    def chosen_index(self) -> int | None:
        """The evaluation the exported policy came from."""
        return self.policy.notes.get("evaluation") if self.policy else None

    @property
    def drift(self) -> float | None:
        """Measured over calibrated-table latency of the uncompressed model: table units to device ms."""
        return self.baseline["table_drift"] if self.baseline else None


def _candidate(row: dict, strategy: str) -> Candidate:
    return Candidate(str(row.get("strategy", strategy)), row["index"], row["predicted_ms"], row["top1"])


def _chosen(policy: Policy | None, strategy: str) -> Candidate | None:
    """The chosen policy as a point of the search, when its notes say which evaluation it was."""
    if policy is None:
        return None
    point = {**policy.notes, "predicted_ms": policy.predicted_latency_ms}
    try:
        require(point, {"evaluation": int, "proxy_top1": NUMBER, "predicted_ms": NUMBER}, "policy")
    except InputError:
        return None  # policies not written by compress do not say where they sit in the search
    return Candidate(str(point.get("strategy", strategy)), point["evaluation"], point["predicted_ms"],
                     point["proxy_top1"])


def stopped_stage(run: CompressRun) -> str:
    """Where an incomplete run (one without summary.json) stopped, or is still working."""
    # A TensorRT run (its calibration record says it was skipped) neither times finalists nor re-times the engine.
    skipped = {"finalists.json", "final_latency.json"} if (run.calibration or {}).get("skipped") else set()
    stage = next(stage for name, stage in STAGES if name not in skipped and not run.records.has(name))
    if stage == "the search":
        evals = run.config.get("evals", "?")
        stage += f": {len(run.candidates.rows)} of {evals} evaluations recorded"
    return stage


def banners(run: CompressRun) -> list[Html]:
    """The lines at the top: completeness, a predicted table, the verdict."""
    out = []
    if run.summary is None:
        out.append(page.banner(f"incomplete run: no summary.json yet (stopped, or still running, during "
                               f"{stopped_stage(run)}). What the run recorded so far is shown below.", "warn"))
    if run.status and run.status["state"] != "complete":
        s = run.status
        error = f": {s['error']}" if s.get("error") else ""
        out.append(page.banner(f"status.json: {s['state']} at stage “{s['stage']}” (updated {s.get('updated', '?')})"
                               f"{error}", "bad" if s["state"] == "failed" else "warn"))
    if run.candidates.truncated:
        out.append(page.banner("the last line of candidates.jsonl is cut short (by a kill, or still being "
                               "written) and is left out", "warn"))
    if run.table is not None and run.table.kind != "measured":
        out.append(page.banner(f"the latency table is {run.table.kind.upper()}, not measured on this device: "
                               "every latency derived from it is a prediction; only latencies labelled measured "
                               "were timed", "bad"))
    if run.predicted_only:
        s = run.summary
        out.append(page.banner(f"PREDICTED {ms(s['predicted_ms'])} against a budget of {ms(s['budget_ms'])}, "
                               f"nothing measured: {s['verdict']}", "warn"))
    elif run.summary:
        s = run.summary
        out.append(page.banner(f"measured {ms(s['measured_ms'])} against a budget of {ms(s['budget_ms'])}: "
                               f"{s['verdict']}", "good" if s["meets_budget"] else "bad"))
    return out


def header(run: CompressRun) -> Html:
    """Who, what, where and when."""
    c, search = run.config, run.search or {}
    versions = c.get("versions") or {}
    evals = f"{c.get('evals', '—')} allowed"
    if "evals_used" in search:
        evals += f", {search['evals_used']} used"
    table_kind = run.table.kind if run.table else "— (no latency_table.json)"
    source = (run.summary or {}).get("table")
    return page.key_values([
        ("model", c.get("model", "—")),
        ("target", c.get("target", "—")),
        ("strategy", c.get("strategy", "—")),
        ("evaluations", evals),
        ("seed", c.get("seed", "—")),
        ("latency budget", c.get("latency_budget", "—")),
        ("device", page.fingerprint_text(c.get("fingerprint"))),
        ("latency table", f"{table_kind}" + (f"; {source}" if source else "")),
        ("created", c.get("created", "—")),
        ("versions", ", ".join(f"{k} {v}" for k, v in {"hirelc-deploy": c.get("version"), **versions}.items()
                               if v) or "—"),
        ("run directory", str(run.records.root)),
    ])


def _rounds_text(values: list[float]) -> str:
    if not values:
        return ""
    return f", min–max {min(values):.4f}–{max(values):.4f} ms over {len(values)} fresh processes"


def predicted_result_table(run: CompressRun) -> Html:
    """The final numbers of a run that could not measure latency (TensorRT target, no GPU here)."""
    s = run.summary
    return page.key_values([
        ("budget", f"{ms(s['budget_ms'])} ({s.get('budget', '?')} of the uncompressed model as the table "
                   "predicts it)"),
        ("predicted latency", f"{ms(s['predicted_ms'])}: PREDICTED by the {s.get('table_kind', '?')} table, "
                              "not measured"),
        ("uncompressed, predicted", ms(s.get("predicted_uncompressed_ms"))),
        ("speedup (predicted)", f"{s['speedup']:.2f}×"),
        ("top-1 on the test split", f"{pct(s['top1_before'])} → {pct(s['top1_after'])} through "
                                    f"{s.get('top1_through', '?')} ({s.get('test_images', '?')} test images)"),
        ("accuracy proxy of the policy", f"{pct(s.get('proxy_top1'))} held-out top-1 before fine-tuning"),
        ("ONNX size", f"{page.megabytes(s['bytes_before'])} → {page.megabytes(s['bytes_after'])}"),
        ("engine", (s.get("engine") or {}).get("reason", "not built")),
        ("verdict", s["verdict"]),
    ])


def result_table(run: CompressRun) -> Html:
    """The final numbers from summary.json."""
    if run.predicted_only:
        return predicted_result_table(run)
    s = run.summary
    at_search = f"; {ms(run.baseline['budget_ms'])} when the search started" if run.baseline else ""
    images = s.get("test_images")
    size_ratio = f" ({s['bytes_before'] / s['bytes_after']:.2f}× smaller)" if s["bytes_after"] else ""
    return page.key_values([
        ("budget", f"{ms(s['budget_ms'])} ({s.get('budget', '?')} of the uncompressed model as measured at the "
                   f"end{at_search})"),
        ("predicted latency", f"{ms(s['predicted_ms'])}: predicted, not measured "
                              + (f"(the {s.get('table_kind')} TensorRT table)" if s.get("backend") == "tensorrt"
                                 else f"(calibrated table × drift {s['table_drift']:.3f})")),
        ("measured latency", f"{ms(s['measured_ms'])} median{_rounds_text(s['measured_rounds_ms'])}"),
        ("uncompressed, measured", f"{ms(s['uncompressed_ms'])} median{_rounds_text(s['uncompressed_rounds_ms'])}"),
        ("speedup (measured)", f"{s['speedup']:.2f}× (median over processes of uncompressed / engine)"),
        ("top-1 on the test split", f"{pct(s['top1_before'])} → {pct(s['top1_after'])}"
                                    + (f" ({images} test images)" if images else "")),
        ("accuracy proxy of the policy", f"{pct(s.get('proxy_top1'))} held-out top-1 before fine-tuning"),
        ("model size", f"{page.megabytes(s['bytes_before'])} → {page.megabytes(s['bytes_after'])}{size_ratio}"),
        ("verdict", s["verdict"]),
    ])


def _result_section(run: CompressRun) -> Html:
    if run.summary is None:
        return page.section("Result", page.tag("p", "No summary.json yet: nothing was exported and measured.",
                                               "note"))
    return page.section("Result", result_table(run))


def _pareto_section(run: CompressRun) -> Html | None:
    strategy = str(run.config.get("strategy", "?"))
    candidates = [_candidate(r, strategy) for r in run.candidates.rows]
    if not candidates:
        return None
    finalists = [Candidate(strategy, f["index"], f["predicted_ms"], f["top1"]) for f in run.finalists]
    png = plots.pareto_figure(candidates, run.budget_table_ms, _chosen(run.policy, strategy), finalists)
    return page.section("Search: predicted latency vs accuracy proxy", page.figure(
        png, "predicted latency vs accuracy proxy",
        f"Each of the {len(candidates)} evaluated configurations: latency predicted by the calibrated table (table "
        "units; device ms are these times the drift in baseline.json), accuracy proxy = top-1 on held-out "
        "training images after BatchNorm recalibration, before fine-tuning. Step line: the Pareto front. "
        "Dashed: the budget in table units."))


def _policy_blocks(run: CompressRun) -> list[BlockRow]:
    relative = {b["name"]: b["relative"] for b in (run.sensitivity or {}).get("blocks", [])}
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
    return [Timed(f"#{f['index']}" + (" (chosen)" if f["index"] == run.chosen_index else ""),
                  f["predicted_ms"] * run.drift, f["measured_ms"],
                  f["measured_ms"] - f["spread_ms"] / 2, f["measured_ms"] + f["spread_ms"] / 2)
            for f in run.finalists]


def _timed_final(summary: dict | None) -> Timed | None:
    if summary is None or summary.get("measured_ms") is None:
        return None
    rounds = summary["measured_rounds_ms"] or [summary["measured_ms"]]
    return Timed("exported", summary["predicted_ms"], summary["measured_ms"], min(rounds), max(rounds))


def finalists_table(run: CompressRun) -> Html:
    """Every finalist: its proxy, prediction and measurement."""
    drift = run.drift or float("nan")
    return page.table(
        ["evaluation", "proxy top-1", "predicted (table) ms", "predicted × drift ms", "measured ms",
         "IQR ms", "budget then (measured) ms", "meets budget", "chosen"],
        [[f["index"], pct(f["top1"]), f"{f['predicted_ms']:.4f}", f"{f['predicted_ms'] * drift:.4f}",
          f"{f['measured_ms']:.4f}", f"{f['spread_ms']:.4f}", f"{f['budget_ms']:.4f}",
          "yes" if f["meets_budget"] else "no", "✓" if f["index"] == run.chosen_index else ""] for f in run.finalists],
        [False, True, True, True, True, True, True, False, False])


def _latency_section(run: CompressRun) -> Html | None:
    finalists, final = _timed_finalists(run), _timed_final(run.summary)
    if not finalists and final is None:
        return None
    budget = run.summary["budget_ms"] if run.summary else (run.finalists[0]["budget_ms"] if run.finalists else None)
    png = plots.latency_check_figure(finalists, final, budget)
    how = ("the exported TensorRT engine was timed with CUDA events, interleaved with the uncompressed engine, "
           "against its (uncalibrated) TensorRT table" if (run.summary or {}).get("backend") == "tensorrt" else
           "x: predicted latency (calibrated table × drift from baseline.json), y: measured latency. Finalists "
           "were timed once, interleaved with the uncompressed model, before fine-tuning; the exported engine "
           "was timed in several fresh processes")
    parts = [page.figure(png, "predicted vs measured latency",
                         f"Engines timed for real: {how}. The budget line is the one the verdict uses (it moves "
                         "with the measured uncompressed latency).")]
    if run.finalists:
        parts.append(finalists_table(run))
    return page.section("Predicted vs measured latency", *parts)


def _progress_section(run: CompressRun) -> Html | None:
    strategy = str(run.config.get("strategy", "?"))
    candidates = [_candidate(r, strategy) for r in run.candidates.rows]
    if not candidates:
        return None
    over = sum(run.budget_table_ms is not None and c.predicted_ms > run.budget_table_ms for c in candidates)
    return page.section("Search progress", page.figure(
        plots.progress_figure(candidates, run.budget_table_ms), "search progress",
        f"Accuracy proxy of each evaluation in the order evaluated, and the best so far among those within the "
        f"budget (predicted). {over} of {len(candidates)} evaluations are predicted over the budget."))


def _recorded_checksums(artifacts: Path) -> dict[str, str]:
    """File name -> SHA-256 as the export's manifest recorded them (empty without a manifest)."""
    manifest = artifacts / MANIFEST_NAME
    if not manifest.is_file():
        return {}
    data = read_json_object(manifest, "manifest", InputError)
    files = data.get("files")
    if not isinstance(files, dict) or not all(isinstance(v, dict) and isinstance(v.get("sha256"), str)
                                              for v in files.values()):
        raise InputError(f"{manifest}: malformed record ('files' must map names to {{sha256, bytes}})")
    return {name: info["sha256"] for name, info in files.items()}


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


def _artifacts_section(run: CompressRun) -> Html | None:
    artifacts = run.records.path("artifacts")
    if not artifacts.is_dir():
        return None
    return page.section("Artifacts", artifacts_table(artifacts))


def _table_section(run: CompressRun) -> Html | None:
    if run.table is None:
        return None
    factors = (run.calibration or {}).get("factors", {})
    note = "".join(f" {k} ×{v:.3f}," for k, v in factors.items() if isinstance(v, (int, float))).rstrip(",")
    return table_section(run.table, f" The search used this table calibrated against real engines:{note}."
                         if note else "")


def compress_report(records: RunRecords) -> str:
    """The HTML report of a compress run (complete or not)."""
    run = CompressRun(records)
    sections = [_result_section(run), _pareto_section(run), _policy_section(run), _latency_section(run),
                _progress_section(run), _table_section(run), _artifacts_section(run)]
    model, target = run.config.get("model", "?"), run.config.get("target", "?")
    return page.document(f"hirelc compress: {model} on {target}", "run report, rebuilt from the run directory",
                         [*banners(run), header(run), *(s for s in sections if s is not None)])

