"""The report of a ``hirelc profile`` run: the latency table and, with ``--validate``, how well it predicts
real exported engines (``latency/validate.py``)."""

from __future__ import annotations

from dataclasses import asdict

from ..latency.table import LatencyTable, load_table
from ..latency.validate import ValidationReport
from ..records import ProfileRunConfig
from ..runs import RunFiles
from . import page, plots
from .page import Html, ms
from .records import RunRecords

SUMMARY_GROUPS = {"all": "all configurations", "fp32": "FP32 only", "int8_or_mixed": "with INT8 blocks"}


def banners(config: ProfileRunConfig | None, table: LatencyTable | None,
            validation: ValidationReport | None) -> list[Html]:
    """Completeness and a predicted table, at the top."""
    out = []
    if table is None:
        out.append(page.banner("incomplete run: no latency_table.json yet (stopped, or still running, during "
                               "profiling)", "warn"))
    elif config and config.validate and validation is None:
        out.append(page.banner("incomplete run: no validation.json yet (stopped, or still running, during "
                               "validation)", "warn"))
    if table is not None and table.kind != "measured":
        out.append(page.banner(f"the latency table is {table.kind.upper()}, not measured on this device: every "
                               "latency in it is a prediction", "bad"))
    return out


def header(config: ProfileRunConfig | None, table: LatencyTable | None) -> Html:
    """Model, target, device and how the table was made."""
    method = table.method if table is not None else {}
    c = config
    return page.key_values([
        ("model", c.model if c else "—"),
        ("target", f"{c.target} ({c.target_file})" if c else "—"),
        ("device", page.fingerprint_text(c.fingerprint if c else None)),
        ("measured on", (c.measured_on if c else "") or method.get("measured_on", "—")),
        ("latency table", f"{table.kind}, created {table.created or '—'}" if table else "—"),
        ("table reused from", (c.table if c else None) or "— (measured in this run)"),
        ("fixed cost (stem, head)", ms(table.fixed_ms) if table else "—"),
        ("networks profiled", method.get("networks_profiled", "—")),
        ("validation", f"{c.validate} random configurations (seed {c.seed})" if c else "—"),
    ])


def table_section(table: LatencyTable, note: str = "") -> Html:
    """The latency table as a heat map, with ``note`` appended to the caption."""
    return page.section("Latency table", page.figure(
        plots.table_heatmap_figure(table), "latency table heat map",
        f"Latency ({table.kind}) of each block (rows, full inner width in brackets) at each inner width (columns, "
        "fraction of the full width) and precision (panels), on one colour scale. A removed block (width 0) runs "
        f"only its shortcut. Precision changes between blocks cost extra (per boundary, not shown).{note}"))


def _percent(value: object) -> str:
    return f"{value:.2f}%" if isinstance(value, (int, float)) else "—"


def _errors_table(summary: dict) -> Html:
    rows = [[label, s.get("count", 0), _percent(s.get("median_ape")), _percent(s.get("max_ape"))]
            for key, label in SUMMARY_GROUPS.items() if isinstance(s := summary.get(key), dict)]
    return page.table(["configurations", "count", "median abs error", "max abs error"], rows,
                      [False, True, True, True])


def _rows_table(rows: list[dict]) -> Html:
    return page.table(
        ["configuration", "precision mix", "predicted ms", "measured ms", "IQR ms", "abs error"],
        [[r.get("label", ""), plots.precision_mix(r["widths"], r["precisions"]), f"{r['predicted_ms']:.4f}",
          f"{r['measured_ms']:.4f}", f"{r['measured_spread_ms']:.4f}", _percent(r.get("abs_pct_error"))]
         for r in rows],
        [False, False, True, True, True, True])


def _validation_section(validation: ValidationReport) -> Html:
    rows = [asdict(r) | {"abs_pct_error": r.abs_pct_error} for r in validation.rows]
    return page.section("Validation: predicted vs measured", page.figure(
        plots.validation_figure(rows), "validation scatter",
        "Each validation configuration exported and timed for real, interleaved. x: the table's prediction, "
        "y: the measured median; colour: precision mix of the kept blocks. Shaded: within 5% of the prediction."),
        _errors_table(validation.summary()), _rows_table(rows))


def profile_report(records: RunRecords) -> str:
    """The HTML report of a profile run (complete or not)."""
    config = records.load(RunFiles.CONFIG, ProfileRunConfig.load)
    table = records.load(RunFiles.TABLE, load_table)
    validation = records.load(RunFiles.VALIDATION, ValidationReport.load)
    sections = [table_section(table) if table else None, _validation_section(validation) if validation else None]
    title = f"hirelc profile: {config.model if config else '?'} on {config.target if config else '?'}"
    return page.document(title, "run report, rebuilt from the run directory",
                         [*banners(config, table, validation), header(config, table),
                          *(s for s in sections if s is not None)])
