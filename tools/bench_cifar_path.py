"""Benchmark: is the small-image CIFAR-10 path as fast as before a change? The same work, run by two source trees,
interleaved (A B A B ...): ResNet-56 with its public checkpoint on ../shared's CIFAR-10 ImageFolder, the data
prepared as compress prepares it (11,000 train JPEGs decoded), Fisher sensitivity on 256 held-out images, the
evaluator's data, and 10 candidate evaluations (seeded random widths and precisions: prune, BatchNorm
recalibration, INT8 simulation, held-out scoring).

Each measurement runs in a fresh subprocess with ``PYTHONPATH`` set to the tree, and only calls what both trees
have (``prepare_data``, ``sensitivity_of``, ``EvalData.from_prepared``, ``Evaluator``). Prints a table of medians
with their spread (min-max over rounds) and writes ``tools/results/bench_cifar_path.json``.

    git archive 33b9b1c | (mkdir -p /tmp/hirelc_before && tar -x -C /tmp/hirelc_before)
    python tools/bench_cifar_path.py --tree before=/tmp/hirelc_before --tree after=. --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PHASES = ("prepare_data", "fisher", "eval_data", "evaluations")

CHILD = r"""
import json, sys, time
import numpy as np, torch
from pathlib import Path
from hirelc_deploy.models import get_model_spec
from hirelc_deploy.pipeline import DataConfig, load_model, prepare_data, sensitivity_of
from hirelc_deploy.search.evaluate import EvalData, Evaluator

torch.manual_seed(0)
data_root, weights, evals = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
spec = get_model_spec("resnet56")
teacher = load_model(spec, weights)
config = DataConfig(seed=0)
times = {}
start = time.perf_counter()
data = prepare_data(spec, data_root, config)
times["prepare_data"] = time.perf_counter() - start
start = time.perf_counter()
sensitivity = sensitivity_of(teacher, spec, data, config)
times["fisher"] = time.perf_counter() - start
start = time.perf_counter()
eval_data = EvalData.from_prepared(data)
times["eval_data"] = time.perf_counter() - start
evaluator = Evaluator(teacher, spec.blocks(), spec.input_shape, eval_data, sensitivity)
rng = np.random.default_rng(0)
top1 = []
start = time.perf_counter()
for _ in range(evals):
    widths = [int(b.step * rng.integers(max(1, b.full_width // (4 * b.step)), b.full_width // b.step + 1))
              if b.prunable else b.full_width for b in spec.blocks()]
    precisions = [str(rng.choice(["fp32", "int8"])) for _ in widths]
    top1.append(evaluator(widths, precisions)[0].top1)
times["evaluations"] = time.perf_counter() - start
print(json.dumps({"times": times, "top1": top1}))
"""


def run_child(tree: Path, data: Path, weights: Path, evals: int) -> dict:
    """One measurement of ``tree`` in a fresh process: phase times (s) and the candidates' held-out top-1."""
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    done = subprocess.run([sys.executable, "-c", CHILD, str(data), str(weights), str(evals)], env=env,
                          capture_output=True, text=True, cwd=tree, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{tree}: the measurement failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", required=True, help="NAME=PATH of a source tree (twice or more)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--evals", type=int, default=10)
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("HIRELC_SHARED", REPO.parent / "shared")))
    parser.add_argument("--out", type=Path, default=REPO / "tools" / "results" / "bench_cifar_path.json")
    args = parser.parse_args()
    trees = dict(item.split("=", 1) for item in args.tree)
    data = args.shared / "datasets" / "cifar10"
    weights = next((args.shared / "models" / "cifar10-resnet").glob("resnet56-*.th"))
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    for round_ in range(args.rounds):
        for name, path in trees.items():  # interleaved: every round runs each tree once
            result = run_child(Path(path).resolve(), data, weights, args.evals)
            runs[name].append(result)
            print(f"round {round_ + 1} {name}: " + ", ".join(f"{k} {v:.1f}s" for k, v in result["times"].items()),
                  flush=True)
    summary = {}
    print(f"\n{'tree':10s}" + "".join(f"{p:>26s}" for p in (*PHASES, "total")))
    for name, results in runs.items():
        rows = {p: [r["times"][p] for r in results] for p in PHASES}
        rows["total"] = [sum(r["times"].values()) for r in results]
        summary[name] = {p: {"median_s": statistics.median(v), "min_s": min(v), "max_s": max(v)}
                         for p, v in rows.items()}
        summary[name]["top1"] = results[0]["top1"]
        print(f"{name:10s}" + "".join(f"{statistics.median(v):9.1f} s ({min(v):.1f}-{max(v):.1f})".rjust(26)
                                      for v in rows.values()))
    same = len({json.dumps(s["top1"]) for s in summary.values()}) == 1
    print(f"candidates' held-out top-1 identical across trees: {same}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"trees": trees, "rounds": args.rounds, "evals": args.evals,
                                    "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                                    "summary": summary, "identical_top1": same, "runs": runs}, indent=2))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
