"""Benchmark: how well do measured block latency tables predict real exported engines?

For each (model, target) pair: profile the table (timed), validate it on N random width/precision
configurations plus all-FP32 full width and all-INT8 half width, and report predicted vs measured latency.
Writes a Markdown table and a JSON file (default: tools/results/latency_table.{md,json}).

    python tools/bench_latency_table.py --validate 12
    python tools/bench_latency_table.py --pairs resnet56:cpu-ort-1t --validate 20
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from rich.console import Console

from hirelc_deploy.jobs.profile import measure_table
from hirelc_deploy.latency import default_table_path, validate
from hirelc_deploy.models import get_model_spec
from hirelc_deploy.runs import atomic_write_json, atomic_write_text
from hirelc_deploy.settings import REPO_ROOT, tables_dir
from hirelc_deploy.targets import backend_of, load_target

DEFAULT_PAIRS = ["resnet18:cpu-ort-1t", "resnet56:cpu-ort-1t"]


def _markdown(results: list[dict]) -> str:
    lines = []
    for res in results:
        s = res["validation"]["summary"]
        lines += [
            f"## {res['model']} on {res['target']} (profiled in {res['profile_s']:.1f} s, "
            f"{res['networks_profiled']} networks)",
            "",
            "| config | INT8 blocks | predicted ms | measured ms | spread (IQR) ms | abs error % |",
            "|---|---|---|---|---|---|",
        ]
        for row in res["validation"]["rows"]:
            n8 = row["precisions"].count("int8")
            lines.append(f"| {row['label']} | {n8}/{len(row['precisions'])} | {row['predicted_ms']:.4f} | "
                         f"{row['measured_ms']:.4f} | {row['measured_spread_ms']:.4f} | {row['abs_pct_error']:.2f} |")
        lines.append("")
        for group in ("fp32", "int8_or_mixed", "all"):
            g = s[group]
            if g["count"]:
                lines.append(f"- {group}: median abs error {g['median_ape']:.2f}%, max {g['max_ape']:.2f}% "
                             f"({g['count']} configs)")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    # The benchmarks read and write the repository's measured tables (their committed inputs), not the user's
    # $HIRELC_HOME/tables; an explicit $HIRELC_TABLES still wins.
    os.environ.setdefault("HIRELC_TABLES", str(REPO_ROOT / "latency_tables"))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", nargs="+", default=DEFAULT_PAIRS, help="MODEL:TARGET pairs")
    parser.add_argument("--validate", type=int, default=12, help="random configurations per pair")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "tools" / "results" / "latency_table")
    parser.add_argument("--save-tables", action="store_true",
                        help="also write the tables to $HIRELC_TABLES (default latency_tables/)")
    args = parser.parse_args()
    console = Console()
    results = []
    for pair in args.pairs:
        model, target_name = pair.split(":")
        spec = get_model_spec(model)
        target = load_target(target_name)
        console.print(f"[bold]{model} on {target.name}[/]: profiling")
        start = time.perf_counter()
        table = measure_table(spec, target)
        profile_s = time.perf_counter() - start
        if args.save_tables:
            table.save(default_table_path(tables_dir(), spec.key, target.name))
        console.print(f"  profiled in {profile_s:.1f} s; validating {args.validate + 2} configurations")
        report = validate(table, spec, target, args.validate, seed=args.seed,
                          measure=backend_of(target).measure_configs)
        results.append({"model": model, "target": target.name, "profile_s": profile_s,
                         "networks_profiled": table.method["networks_profiled"], "fingerprint": table.fingerprint,
                         "validation": report.to_dict()})
        s = report.summary()
        for group in ("fp32", "int8_or_mixed"):
            if s[group]["count"]:
                console.print(f"  {group}: median {s[group]['median_ape']:.2f}%  max {s[group]['max_ape']:.2f}%")
    atomic_write_json(args.out.with_suffix(".json"), results)
    atomic_write_text(args.out.with_suffix(".md"), _markdown(results))
    console.print(_markdown(results))
    console.print(f"written {args.out.with_suffix('.md')} and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
