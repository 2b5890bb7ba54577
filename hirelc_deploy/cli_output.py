"""How the ``hirelc`` commands print the records the jobs return (tables on stdout, for people)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .artifacts.artifact import MODEL_NAME
from .artifacts.manifest import Manifest
from .latency.validate import ValidationReport
from .records import CompressSummary


def print_validation(report: ValidationReport) -> None:
    """Each validated configuration, predicted vs measured, and the error summaries."""
    table = Table(title=f"Predicted vs measured: {report.model} on {report.target}")
    for col in ("config", "precisions", "predicted ms", "measured ms", "spread ms", "abs err %"):
        table.add_column(col, justify="right" if "ms" in col or "%" in col else "left")
    for r in report.rows:
        mix = "/".join(f"{p}:{r.precisions.count(p)}" for p in sorted(set(r.precisions)))
        table.add_row(r.label, mix, f"{r.predicted_ms:.4f}", f"{r.measured_ms:.4f}", f"{r.measured_spread_ms:.4f}",
                      f"{r.abs_pct_error:.2f}")
    Console().print(table)
    for group, s in report.summary().items():
        if s["count"]:
            Console().print(f"{group:>14}: median abs error {s['median_ape']:.2f}%  max {s['max_ape']:.2f}%  "
                            f"({s['count']} configs)")


def print_engine_export(out: Path, manifest: Manifest) -> None:
    """An export whose backend builds engines (TensorRT): the graph's precisions and the engine, or why not."""
    checks, engine = manifest.checks, manifest.engine
    counts = Counter(checks["block_precisions"].values())
    print(f"{out / MODEL_NAME}: {manifest.backend}-bound graph (blocks: "
          f"{', '.join(f'{n} {p}' for p, n in sorted(counts.items()))}; {len(checks['sparse_2_4_layers'])} "
          f"layers 2:4 sparse); top-1 "
          f"agreement with PyTorch {checks['final_top1_agreement_with_torch']:.3f} on {checks['check_images']} "
          f"held-out images ({checks['checked_with']})")
    if engine.get("built"):
        unchecked = engine.get("unchecked_blocks") or []
        print(f"{out / 'model.engine'}: built with TensorRT {engine['tensorrt_version']}; every convolution TensorRT "
              f"reports runs the precision the policy asks for ({engine['layer_info']})"
              + (f"; not checkable (inside Myelin layers): {', '.join(unchecked)}" if unchecked else ""))
    else:
        print(f"engine NOT built: {engine['reason']}")
    if manifest.predicted_latency_ms is not None:
        print(f"predicted {manifest.predicted_latency_ms:.4f} ms ({manifest.latency_kind} table, not a measurement)")


def print_summary(summary: CompressSummary) -> None:
    """A compress run's result: measured (or PREDICTED) latency against the budget, top-1 and sizes."""
    table = Table(title=f"{summary.model} on {summary.target}: {summary.strategy} search, budget {summary.budget}")
    table.add_column("")
    table.add_column("uncompressed", justify="right")
    table.add_column("compressed", justify="right")
    if summary.measured:
        rounds = summary.measured_rounds_ms
        spread = f" ({min(rounds):.4f}-{max(rounds):.4f} over {len(rounds)} processes)" if len(rounds) > 1 else ""
        table.add_row("latency ms (measured)", f"{summary.uncompressed_ms:.4f}", f"{summary.measured_ms:.4f}{spread}")
    table.add_row(f"latency ms ({'predicted' if summary.measured else 'PREDICTED'}: {summary.predicted_with})",
                  f"{summary.predicted_uncompressed_ms:.4f}", f"{summary.predicted_ms:.4f}")
    table.add_row("budget ms", "", f"{summary.budget_ms:.4f}")
    table.add_row(f"speedup ({'measured' if summary.measured else 'PREDICTED'})", "", f"{summary.speedup:.2f}x")
    table.add_row(f"top-1 ({summary.test_images} test images)", f"{100 * summary.top1_before:.2f}%",
                  f"{100 * summary.top1_after:.2f}%")
    table.add_row("size MB", f"{summary.bytes_before / 1e6:.2f}", f"{summary.bytes_after / 1e6:.2f}")
    Console().print(table)
    Console().print(f"top-1 through {summary.top1_through}")
    if summary.bad_images:
        Console().print(f"skipped {len(summary.bad_images)} unreadable images (--skip-bad-images; listed in "
                        "summary.json)")
    latency = summary.measured_ms if summary.measured else summary.predicted_ms
    Console().print(f"{'measured' if summary.measured else 'PREDICTED (not measured)'} {latency:.4f} ms against a "
                    f"budget of {summary.budget_ms:.4f} ms: {summary.verdict}")
