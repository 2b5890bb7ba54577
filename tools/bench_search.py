"""Search benchmark: every strategy, same table, same evaluation function, same number of real evaluations.

ResNet-56 (public CIFAR-10 checkpoint) on CIFAR-10 from ../shared, for each target and budget:

* every strategy runs once per seed with ``--evals`` real evaluations; the best proxy accuracy (top-1 on held-out
  *train* images, BatchNorm recalibrated, INT8 simulated) is reported as a median over seeds with its range;
* the best policy over the seeds is then treated as ``hirelc compress`` treats it: the finalists are timed for
  real, the chosen one is pruned for real, fine-tuned by distillation (the same short fine-tune for every
  strategy), exported, and timed in fresh processes interleaved with the uncompressed model; top-1 of that engine
  on the test split is reported.

Search wall time is what each search would take alone: its own time plus the time of evaluations it took from
the cache shared by all searches in this script (results do not depend on strategy, seed or target).

    python tools/bench_search.py --evals 40 --seeds 0,1,2

prints a table per target and writes ``tools/results/bench_search.json`` (and ``.md``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from hirelc_deploy.apply import DistillConfig
from hirelc_deploy.budget import parse_budget
from hirelc_deploy.data import Normalize, load_images, open_dataset
from hirelc_deploy.jobs.compress import calibrated_space, final_latency
from hirelc_deploy.jobs.finalists import BudgetNotMet, close_the_loop
from hirelc_deploy.verdict import judge
from hirelc_deploy.jobs.profile import ensure_table
from hirelc_deploy.models import get_model_spec
from hirelc_deploy.pipeline import DataConfig, export_policy, load_model, prepare_data, sensitivity_of
from hirelc_deploy.runs import atomic_write_json, atomic_write_text
from hirelc_deploy.search import SearchSpace
from hirelc_deploy.search.evaluate import EvalData, Evaluator
from hirelc_deploy.search.executors import make_executor
from hirelc_deploy.search.registry import STRATEGIES
from hirelc_deploy.search.run import run_search
from hirelc_deploy.settings import REPO_ROOT, shared_dir, tables_dir
from hirelc_deploy.targets import backend_of, current_fingerprint, load_target

MODEL = "resnet56"


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--targets", default="cpu-ort-1t,cpu-ort-b32")
    p.add_argument("--budgets", default="0.5x,0.35x")
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--evals", type=int, default=40)
    p.add_argument("--heldout-images", type=int, default=1000)
    p.add_argument("--finetune-images", type=int, default=5000)
    p.add_argument("--finetune-epochs", type=float, default=1.0)
    p.add_argument("--test-per-class", type=int, default=100)
    p.add_argument("--out", type=Path, default=REPO_ROOT / "tools" / "results" / "bench_search.json")
    p.add_argument("--executor", default="local", help="where candidates are evaluated: local or ray (same results)")
    p.add_argument("--ray-address", default=None, help="with --executor ray: auto or ray://HOST:PORT")
    return p.parse_args()


def _search_seconds(outcome) -> float:
    return outcome.seconds + sum(e.result.seconds for e in outcome.history if e.cached)


def _spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "all": values}


def main() -> int:
    # The benchmarks read and write the repository's measured tables (their committed inputs), not the user's
    # $HIRELC_HOME/tables; an explicit $HIRELC_TABLES still wins.
    os.environ.setdefault("HIRELC_TABLES", str(REPO_ROOT / "latency_tables"))
    args = _args()
    console = Console()
    # Inputs checked before minutes of data loading and searching.
    budgets = {text: parse_budget(text, "--budgets") for text in args.budgets.split(",")}
    targets = {name: load_target(name) for name in args.targets.split(",")}
    for target in targets.values():
        if not backend_of(target).calibrates:
            raise SystemExit(f"{target.name}: compress neither calibrates the table nor times finalists on "
                             f"{target.backend} targets, and this benchmark measures every strategy through both")
    spec = get_model_spec(MODEL)
    data_root = shared_dir() / "datasets" / "cifar10"
    teacher = load_model(spec, shared_dir() / "models" / "cifar10-resnet" / "resnet56-4bfd9763.th")
    torch.manual_seed(0)
    data_config = DataConfig(seed=0, train_images=args.finetune_images, heldout_images=args.heldout_images)
    data = prepare_data(spec, data_root, data_config)
    sensitivity = sensitivity_of(teacher, spec, data, data_config)
    executor = make_executor(args.executor, args.ray_address)
    evaluator = Evaluator(teacher, spec.blocks(), spec.input_shape, EvalData.from_prepared(data), sensitivity,
                          executor=executor)
    test = load_images(open_dataset(data_root, "test", limit_per_class=args.test_per_class))
    strategies = args.strategies.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    report = {"model": MODEL, "evals": args.evals, "seeds": seeds, "heldout_images": args.heldout_images,
              "finetune": {"images": args.finetune_images, "epochs": args.finetune_epochs},
              "test_images": len(test), "executor": executor.describe(), "targets": {}}
    for target_name, target in targets.items():
        backend = backend_of(target)
        table, source = ensure_table(spec, target, tables_dir())
        # Calibrated once per target, against the tighter budget's configurations (compress does it per run).
        raw_uncompressed_ms = SearchSpace(table, target.precisions).uncompressed_ms
        tightest = min(budgets.values(), key=lambda b: b.ms_against(raw_uncompressed_ms))
        space, calibration, uncompressed_ms = calibrated_space(table, spec, target, sensitivity, tightest, backend)
        # Every budget against the uncompressed model just measured, checked feasible (as compress does) before
        # any search starts.
        resolved = {text: budget.resolve(uncompressed_ms, space.uncompressed_ms, space.fastest_ms)
                    for text, budget in budgets.items()}
        target_report = report["targets"][target_name] = {
            "table": source, "calibration": calibration.to_dict(), "fingerprint": current_fingerprint(target).to_dict(),
            "uncompressed_ms": uncompressed_ms, "table_drift": uncompressed_ms / space.uncompressed_ms, "budgets": {}}
        found = {}
        for budget_text, now in resolved.items():
            target_report["budgets"][budget_text] = {"budget_ms": now.ms, "strategies": {}}
            for strategy in strategies:
                found[budget_text, strategy] = []
                for seed in seeds:
                    outcome = run_search(strategy, space, sensitivity, evaluator, now.table_ms, args.evals, seed)
                    found[budget_text, strategy].append(outcome)
                    console.print(f"{target_name} {budget_text} {strategy} seed {seed}: best proxy "
                                  f"{outcome.best.result.top1:.3f} ({_search_seconds(outcome):.0f} s alone)")
        # All timing after all searching: nothing else of this script competes with the measurements.
        console.print(f"{target_name}: searches done, measuring")
        for (budget_text, strategy), outcomes in found.items():
            rows = target_report["budgets"][budget_text]
            rows["strategies"][strategy] = row = _strategy_row(
                outcomes, space, spec, target, budgets[budget_text], teacher, data, data_config, args, table,
                sensitivity, test)
            console.print(f"{target_name} {budget_text} {strategy}: engine {row['measured_ms']:.4f} ms "
                          f"({row['budget_ratio']:.3f}x the budget: {row['verdict']}), top-1 {row['top1']:.3f}")
        _print(console, target_name, target_report)
        atomic_write_json(args.out, report)
    atomic_write_json(args.out, report)
    atomic_write_text(args.out.with_suffix(".md"), _markdown(report))
    console.print(f"wrote {args.out}")
    return 0


def _strategy_row(outcomes, space, spec, target, budget, teacher, data, data_config, args, table, sensitivity,
                  test) -> dict:
    """Seed statistics, then the best policy over the seeds through compress's own stages: finalists timed and
    one chosen, applied and fine-tuned, exported, benchmarked, timed over the backend's final rounds, judged.
    The closed loop chooses only among the seed's recorded candidates (strategies are compared at equal
    evaluations: no search again)."""
    backend = backend_of(target)
    best = max(outcomes, key=lambda o: o.best.result.key())
    seeds = {"proxy_top1": _spread([o.best.result.top1 for o in outcomes]),
             "search_seconds": _spread([_search_seconds(o) for o in outcomes]),
             "strategy_seconds": _spread([o.strategy_seconds for o in outcomes]),
             "evaluating_share": _spread([o.evaluating_share for o in outcomes]),
             "evals_used": [len(o.history) for o in outcomes], "best_seed": best.seed}
    try:
        chosen, finalists = close_the_loop(best.history, space, spec, target, budget, best.budget_table_ms, 3,
                                           backend, lambda *_: [])
    except BudgetNotMet as missed:
        return {**seeds, "finalists": missed.finalists.to_dict(), "verdict": str(missed), "measured_ms": None,
                "budget_ratio": None, "speedup": None, "top1": None}
    policy = space.policy(chosen.options, strategy=best.strategy, evaluation=chosen.index,
                          proxy_top1=chosen.result.top1, proxy_agreement=chosen.result.agreement)
    with tempfile.TemporaryDirectory() as tmp:
        artifacts = Path(tmp)
        export_policy(teacher, spec, policy, target, data, data_config, DistillConfig(epochs=args.finetune_epochs),
                      artifacts, table.fingerprint, sensitivity, "fisher")
        result = backend.bench_export(artifacts, target, test, Normalize(spec.mean, spec.std))
        latency = final_latency(backend, artifacts, target, result)
    budget_ms, ratio, text = judge(budget, latency)
    return {
        **seeds, "finalists": finalists.to_dict(), "exported_proxy_top1": chosen.result.top1,
        "widths": list(chosen.widths), "precisions": list(chosen.precisions),
        "predicted_ms": chosen.predicted_ms, "budget_ms": budget_ms, "measured_ms": latency.engine_ms,
        "measured_rounds_ms": latency.engine_rounds_ms, "uncompressed_ms": latency.uncompressed_ms,
        "budget_ratio": ratio, "verdict": text, "speedup": latency.speedup,
        "top1": result.top1, "baseline_top1": result.baseline_top1,
    }


def _print(console: Console, target_name: str, target_report: dict) -> None:
    for budget_text, rows in target_report["budgets"].items():
        table = Table(title=f"{MODEL} on {target_name}, budget {budget_text} ({rows['budget_ms']:.3f} ms)")
        for column in ("strategy", "proxy top-1 median [min-max]", "evals used", "search s", "evaluating",
                       "engine ms", "vs budget", "speedup", "test top-1"):
            table.add_column(column, justify="right")
        for strategy, row in rows["strategies"].items():
            p = row["proxy_top1"]
            table.add_row(strategy, f"{p['median']:.3f} [{p['min']:.3f}-{p['max']:.3f}]", *_search_cells(row),
                          *_measured(row))
        console.print(table)


def _search_cells(row: dict) -> list[str]:
    """Evaluations used (per seed), search seconds and the share of them spent evaluating (medians)."""
    share = row.get("evaluating_share")
    return ["/".join(str(n) for n in row["evals_used"]), f"{row['search_seconds']['median']:.0f}",
            f"{share['median']:.0%}" if share else "-"]


def _measured(row: dict) -> list[str]:
    """Engine ms, ratio to the budget, speedup and test top-1; dashes where no finalist met the budget."""
    if row["measured_ms"] is None:
        return ["-", "no finalist met it", "-", "-"]
    return [f"{row['measured_ms']:.4f}", f"{row['budget_ratio']:.3f}x", f"{row['speedup']:.2f}x", f"{row['top1']:.3f}"]


def _markdown(report: dict) -> str:
    lines = [f"# Search benchmark: {report['model']}, {report['evals']} real evaluations per search, "
             f"seeds {report['seeds']}", ""]
    for target_name, target_report in report["targets"].items():
        lines.append(f"uncompressed on {target_name}: {target_report['uncompressed_ms']:.4f} ms "
                     f"(table {target_report['table']})")
        lines.append("")
        for budget_text, rows in target_report["budgets"].items():
            lines += [f"## {target_name}, budget {budget_text} ({rows['budget_ms']:.4f} ms)", "",
                      "| strategy | proxy top-1 median [min-max] | evals used | search s | evaluating | engine ms "
                      "| vs budget | speedup | test top-1 |", "|---|---|---|---|---|---|---|---|---|"]
            for strategy, row in rows["strategies"].items():
                p = row["proxy_top1"]
                lines.append(f"| {strategy} | {p['median']:.3f} [{p['min']:.3f}-{p['max']:.3f}] | "
                             + " | ".join(_search_cells(row) + _measured(row)) + " |")
            lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
