"""Frontier benchmark: ResNet-56 compressed at several latency budgets, beside the baselines a user would pick instead.

Per (target, budget), each arm is a real ``hirelc compress`` in a fresh process on ../shared's CIFAR-10 with the
public checkpoint, top-1 on the whole test split (10,000 images), and the run's own final timing (its engine
against the uncompressed FP32 engine, interleaved, in fresh processes):

* ``hirelc``: today's recipe (``--finetune-epochs auto``, quantization-aware fine-tuning, finalists ranked after
  a short distillation);
* ``wave1``: the recipe before them (1 epoch of plain FP32 distillation, finalists in proxy order). The search
  is today's: the wave-1 search strategy is not kept in the package;
* ``uniform``: the ``uniform`` strategy (the widest uniform width fraction that meets the budget, all FP32 or all
  INT8, whichever scores better) with today's recipe.

Per target, once:

* ``int8-only``: ONNX Runtime static INT8 of the uncompressed model (``hirelc plan`` at full width, all INT8;
  ``hirelc export --finetune-epochs 0``), what a user gets without pruning;
* ``reference``: the uncompressed model distilled with the recipe (``--reference-epochs``), against which every
  arm's accuracy change is reported, so fine-tuning on train images is not credited to compression.

Both per-target arms go through ``hirelc export``, which re-estimates BatchNorm on training images before anything
else, as every compress arm does: the comparison holds that step constant.

    python tools/bench_frontier.py                                    # the issue's 6 points
    python tools/bench_frontier.py --points "cpu-ort-1t=0.5x,0.28x" --evals 40 --finetune-minutes 6
    python tools/bench_frontier.py --keep --points ""                 # only the table and plot, from the JSON

prints a table, writes ``tools/results/bench_frontier.json`` and ``.md`` (tracked) and ``.png`` (not tracked: drawn
again from the JSON with ``--keep --points ""``); ``--keep`` skips what the JSON
already holds, so an interrupted benchmark continues.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hirelc_deploy.data import Normalize, load_images, open_dataset
from hirelc_deploy.jobs.compress import final_latency
from hirelc_deploy.jobs.profile import ensure_table
from hirelc_deploy.latency.table import default_table_path
from hirelc_deploy.models import get_model_spec
from hirelc_deploy.report.plots import new_figure, to_png
from hirelc_deploy.runs import atomic_write_bytes, atomic_write_json, atomic_write_text
from hirelc_deploy.settings import REPO_ROOT, shared_dir, tables_dir
from hirelc_deploy.targets import backend_of, load_target

MODEL = "resnet56"
POINTS = "cpu-ort-1t=0.5x,0.35x,0.28x,0.2x;cpu-ort-b32=0.5x,0.28x"
ARMS = {
    "hirelc": ["--finetune-epochs", "auto", "--qat"],
    "wave1": ["--finetune-epochs", "1", "--no-qat", "--finalist-images", "0"],
    "uniform": ["--strategy", "uniform", "--finetune-epochs", "auto", "--qat"],
}
# The goals of the frontier issue at batch 1: (speedup at least, top-1 loss at most, in points).
GOALS = ((4.0, 0.5), (5.0, 1.0))


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--points", default=POINTS, help="target=budget,budget;... (default: %(default)s)")
    p.add_argument("--arms", default=",".join(ARMS), help="compress arms per point (default: %(default)s)")
    p.add_argument("--evals", type=int, default=100, help="real evaluations of each search")
    p.add_argument("--finetune-minutes", type=float, default=15.0, help="wall-time cap of each fine-tune")
    p.add_argument("--reference-epochs", default="1", help="distillation epochs of the uncompressed reference")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "tools" / "results" / "bench_frontier")
    p.add_argument("--keep", action="store_true", help="skip rows already in the output JSON")
    p.add_argument("--executor", default="local", help="compress's --executor for every arm (same results)")
    return p.parse_args()


def parse_points(text: str) -> list[tuple[str, str]]:
    """``target=budget,budget;...`` as (target, budget) pairs."""
    points = []
    for group in filter(None, text.split(";")):
        target, budgets = group.split("=")
        points += [(target, b) for b in budgets.split(",")]
    return points


def _common(target: str) -> list[str]:
    shared = shared_dir()
    return ["--model", MODEL, "--weights", str(shared / "models" / "cifar10-resnet" / "resnet56-4bfd9763.th"),
            "--data", str(shared / "datasets" / "cifar10"), "--target", target]


def _hirelc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hirelc_deploy.cli", "-q", *args], capture_output=True, text=True)


def _error(done: subprocess.CompletedProcess) -> str:
    return done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}, no output"


def compress_row(target: str, budget: str, arm: str, args, workdir: Path) -> dict:
    """One ``hirelc compress`` arm: its verdict, speedup, test top-1 and where its search time went."""
    run = workdir / f"{target}-{budget}-{arm}"
    start = time.perf_counter()
    done = _hirelc("compress", *_common(target), "--latency-budget", budget, "--evals", str(args.evals),
                   "--finetune-minutes", str(args.finetune_minutes), *ARMS[arm], "--run-dir", str(run),
                   "--executor", args.executor, "--json")
    row = {"target": target, "budget": budget, "arm": arm, "wall_s": time.perf_counter() - start, "run_dir": str(run)}
    if done.returncode != 0:
        return {**row, "error": _error(done)}
    return {**row, **read_run(run)}


def read_run(run: Path) -> dict:
    """What a finished compress run directory says: verdict, timings, top-1, search time, fine-tune, policy."""
    summary = json.loads((run / "summary.json").read_text())
    search = json.loads((run / "search.json").read_text())
    manifest = json.loads((run / "artifacts" / "manifest.json").read_text())
    blocks = json.loads((run / "policy.json").read_text())["blocks"]
    return {**{k: summary[k] for k in ("verdict", "budget_ms", "budget_ratio", "measured_ms", "measured_rounds_ms",
                                       "uncompressed_ms", "uncompressed_rounds_ms", "speedup", "top1_before",
                                       "top1_after", "test_images")},
            "search_s": search["seconds"], "evaluation_s": search["evaluation_seconds"],
            "strategy_s": search["strategy_seconds"], "evals_used": search["evals_used"],
            "finetune": manifest.get("finetune"), "policy": [[b["width"], b["precision"]] for b in blocks]}


def plain_row(target: str, name: str, precision: str, epochs: str, workdir: Path, test, normalize) -> dict:
    """The uncompressed model at full width in ``precision`` for every block, exported with ``epochs`` of
    distillation, scored on ``test`` and timed against the FP32 engine in fresh processes."""
    out = workdir / f"{target}-{name}"
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    # plan refuses a table measured elsewhere (or on older graphs); compress would re-measure one, so do the same.
    ensure_table(get_model_spec(MODEL), load_target(target), tables_dir())
    table = default_table_path(tables_dir(), MODEL, target)
    done = _hirelc("plan", "--table", str(table), "--fraction", "1.0", "--precision", precision,
                   "--out", str(out / "policy.json"))
    if done.returncode == 0:
        done = _hirelc("export", *_common(target), "--policy", str(out / "policy.json"), "--out", str(out / "art"),
                       "--finetune-epochs", epochs, "--no-qat")
    row = {"target": target, "arm": name, "precision": precision, "finetune_epochs": epochs}
    if done.returncode != 0:
        return {**row, "error": _error(done)}
    loaded = load_target(target)
    backend = backend_of(loaded)
    result = backend.bench_export(out / "art", loaded, test, normalize)
    latency = final_latency(backend, out / "art", loaded, result)
    return {**row, "wall_s": time.perf_counter() - start, "measured_ms": latency.engine_ms,
            "measured_rounds_ms": latency.engine_rounds_ms, "uncompressed_ms": latency.uncompressed_ms,
            "uncompressed_rounds_ms": latency.uncompressed_rounds_ms, "speedup": latency.speedup,
            "top1_after": result.top1, "top1_before": result.baseline_top1, "test_images": len(test)}


def main() -> int:
    os.environ.setdefault("HIRELC_TABLES", str(REPO_ROOT / "latency_tables"))
    args = _args()
    console = Console()
    points = parse_points(args.points)
    arms = args.arms.split(",")
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        raise SystemExit(f"--arms: unknown arm(s) {', '.join(unknown)} (known: {', '.join(ARMS)})")
    out_json = args.out.with_suffix(".json")
    report = json.loads(out_json.read_text()) if args.keep and out_json.is_file() else {"rows": []}
    # Each row keeps the settings it ran with, so rows of several invocations (--keep) stay readable.
    settings = {"evals": args.evals, "finetune_minutes": args.finetune_minutes,
                "reference_epochs": args.reference_epochs}
    report["arms"] = ARMS
    done = {(r["target"], r.get("budget"), r["arm"]) for r in report["rows"] if "error" not in r}
    spec = get_model_spec(MODEL)
    normalize = Normalize(spec.mean, spec.std)
    test = []  # the whole test split, decoded once, only if a per-target arm runs
    workdir = Path(tempfile.mkdtemp(prefix="bench_frontier_"))

    def record(row: dict) -> None:
        row["settings"] = settings
        report["rows"] = [r for r in report["rows"]
                          if (r["target"], r.get("budget"), r["arm"]) != (row["target"], row.get("budget"), row["arm"])]
        report["rows"].append(row)
        console.print(f"{row['target']} {row.get('budget', '')} {row['arm']}: "
                      + (row["error"] if "error" in row else f"{row['speedup']:.2f}x, top-1 {row['top1_after']:.4f}"))
        atomic_write_json(out_json, report)

    for target in dict.fromkeys(t for t, _ in points):
        for name, precision, epochs in (("reference", "fp32", args.reference_epochs), ("int8-only", "int8", "0")):
            if (target, None, name) not in done:
                console.print(f"{target} {name} ...")
                test = test or load_images(open_dataset(shared_dir() / "datasets" / "cifar10", "test"))
                record(plain_row(target, name, precision, epochs, workdir, test, normalize))
    for target, budget in points:
        for arm in arms:
            if (target, budget, arm) not in done:
                console.print(f"{target} {budget} {arm} ...")
                record(compress_row(target, budget, arm, args, workdir))
    _finish(console, report, args.out)
    return 0


def _reference(report: dict, target: str) -> float | None:
    return next((r["top1_after"] for r in report["rows"]
                 if r["target"] == target and r["arm"] == "reference" and "error" not in r), None)


def _cells(report: dict, r: dict) -> list[str]:
    name = [r["target"], r.get("budget", "-"), r["arm"]]
    if "error" in r:
        return name + [r["error"]] + ["-"] * 6
    reference = _reference(report, r["target"])
    change = "-" if reference is None else f"{100 * (r['top1_after'] - reference):+.2f}"
    search = (f"{r['search_s']:.0f} s, {r['evaluation_s'] / r['search_s']:.0%} evaluating, "
              f"{r['evals_used']} evals") if "search_s" in r else "-"
    ratio = f"{r['budget_ratio']:.3f}x" if "budget_ratio" in r else "-"
    return name + [f"{r['measured_ms']:.4f} [{min(r['measured_rounds_ms']):.4f}-{max(r['measured_rounds_ms']):.4f}]",
                   f"{r['speedup']:.2f}x", ratio, f"{100 * r['top1_after']:.2f}", change, search,
                   f"{r['wall_s'] / 60:.1f}"]


COLUMNS = ("target", "budget", "arm", "engine ms median [range]", "speedup", "vs budget", "test top-1 %",
           "vs reference (points)", "search", "minutes")


def _finish(console: Console, report: dict, out: Path) -> None:
    table = Table(title=f"{MODEL}: speedup (measured, fresh processes) and top-1 on the whole test split")
    for column in COLUMNS:
        table.add_column(column, justify="right")
    for r in report["rows"]:
        table.add_row(*_cells(report, r))
    console.print(table)
    lines = [f"# Frontier: {MODEL} on CIFAR-10 (arms: `{json.dumps(report['arms'])}`)", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cells(report, r)) + " |" for r in report["rows"]]
    lines += ["", "Goals at batch 1: " + "; ".join(f">= {s:.0f}x with <= {loss} point loss" for s, loss in GOALS), "",
              "Settings per row: " + "; ".join(f"{r['target']} {r.get('budget', '')} {r['arm']}: "
                                              f"`{json.dumps(r.get('settings'))}`" for r in report["rows"])]
    atomic_write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    atomic_write_bytes(out.with_suffix(".png"), _plot(report))
    console.print(f"wrote {out.with_suffix('.json')} (.md, .png)")


def _plot(report: dict) -> bytes:
    """Accuracy change against the reference versus measured speedup, one panel per target."""
    rows = [r for r in report["rows"] if "error" not in r and r["arm"] != "reference"]
    targets = list(dict.fromkeys(r["target"] for r in rows)) or ["(no rows)"]
    figure = new_figure(5.5 * len(targets), 4.2)
    for i, target in enumerate(targets):
        ax = figure.add_subplot(1, len(targets), i + 1)
        reference = _reference(report, target)
        for arm, marker in zip(("hirelc", "wave1", "uniform", "int8-only"), "o^sD"):
            mine = sorted((r for r in rows if r["target"] == target and r["arm"] == arm), key=lambda r: r["speedup"])
            if mine and reference is not None:
                ax.plot([r["speedup"] for r in mine], [100 * (r["top1_after"] - reference) for r in mine],
                        marker=marker, label=arm)
        if target == "cpu-ort-1t":
            ax.plot([s for s, _ in GOALS], [-loss for _, loss in GOALS], marker="*", markersize=12, color="grey",
                    linestyle="none", label="goals")
        ax.axhline(0.0, color="grey", linewidth=0.5)
        ax.set(title=target, xlabel="measured speedup vs FP32 engine (x)",
               ylabel="top-1 change vs fine-tuned uncompressed (points)")
        ax.legend(fontsize=8)
    return to_png(figure)


if __name__ == "__main__":
    sys.exit(main())
