"""Benchmark: candidate evaluations per second with the local executor and with Ray, on this machine and on a
simulated cluster.

The work is compress's: ResNet-56 with its public checkpoint on ../shared's CIFAR-10, the evaluator's data as
compress prepares it (BatchNorm batches and INT8 calibration from train, ``--heldout`` held-out train images to
score on), and a fixed, seeded set of distinct random configurations (widths and precisions, put through the
evaluator as one ask-k batch: prune, recalibrate BatchNorm, simulate INT8, score). Every arm evaluates the same
configurations with an empty cache, and every arm's results are checked equal to the local executor's.

Arms, run interleaved over ``--rounds`` (each Ray arm starts its own Ray instance and shuts it down after):

* ``local``: this process, PyTorch with its default threads;
* ``ray-1``, ``ray-2``: a Ray instance on this machine with 1 and 2 CPUs (one evaluation per CPU, each worker
  with one PyTorch thread);
* ``cluster-NxC``: ``ray.cluster_utils.Cluster``, N Ray nodes of C CPUs each started by the script on this machine
  (what a cluster looks like to the scheduler; all share this machine's cores, so throughput stops growing at
  the physical core count).

Per arm: the warm throughput (evaluations per second once the workers hold the evaluator: the ``--evals``
timed after a warm-up batch of one per worker) and the cold start (Ray's start, shipping the evaluator, the
workers' first evaluation). Prints a table (median [min-max] over rounds) and writes
``tools/results/bench_scale.json``.

    python tools/bench_scale.py --rounds 2 --evals 8 --heldout 500
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from hirelc_deploy.models import get_model_spec
from hirelc_deploy.pipeline import DataConfig, load_model, prepare_data, sensitivity_of
from hirelc_deploy.runs import atomic_write_json
from hirelc_deploy.search.evaluate import EvalData, Evaluator
from hirelc_deploy.search.executors import LocalExecutor, RayExecutor
from hirelc_deploy.settings import REPO_ROOT, shared_dir

ARMS = "local,ray-1,ray-2,cluster-2x1,cluster-4x1"


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arms", default=ARMS, help="comma-separated (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved repetitions of every arm")
    p.add_argument("--evals", type=int, default=12, help="timed evaluations per arm and round")
    p.add_argument("--heldout", type=int, default=1000, help="held-out images each candidate is scored on")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "tools" / "results" / "bench_scale.json")
    return p.parse_args()


def configs(spec, count: int, seed: int = 0) -> list[tuple[list[int], list[str]]]:
    """``count`` distinct seeded random configurations (kept widths per block, FP32 or INT8 per block)."""
    rng = np.random.default_rng(seed)
    seen: dict = {}
    while len(seen) < count:
        widths = [int(b.step * rng.integers(max(1, b.full_width // (4 * b.step)), b.full_width // b.step + 1))
                  if b.prunable else b.full_width for b in spec.blocks()]
        precisions = [str(rng.choice(["fp32", "int8"])) for _ in widths]
        seen[(tuple(widths), tuple(precisions))] = (widths, precisions)
    return list(seen.values())


def _start(arm: str):
    """The executor of ``arm`` (starting its Ray instance or simulated cluster) and what to stop afterwards."""
    if arm == "local":
        return LocalExecutor(), None
    import ray

    if arm.startswith("ray-"):
        ray.init(address="local", num_cpus=int(arm[4:]), include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        return RayExecutor(), None
    from ray.cluster_utils import Cluster

    nodes, cpus = (int(v) for v in arm.removeprefix("cluster-").split("x"))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": cpus, "include_dashboard": False})
    for _ in range(nodes - 1):
        cluster.add_node(num_cpus=cpus)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
    return RayExecutor(), cluster


def run_arm(arm: str, shared: Evaluator, warmup: list, timed: list) -> dict:
    """One arm once: its cold start, warm throughput and results."""
    start = time.perf_counter()
    executor, cluster = _start(arm)
    evaluator = Evaluator(shared.teacher, shared.blocks, shared.input_shape, shared.data, shared.sensitivity,
                          cache={}, executor=executor)
    workers = getattr(executor, "workers", 1)
    evaluator.evaluate_many(warmup[:workers])
    cold = time.perf_counter() - start
    start = time.perf_counter()
    results = [r for r, _ in evaluator.evaluate_many(timed)]
    wall = time.perf_counter() - start
    if executor.name == "ray":
        import ray

        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
    return {"arm": arm, "workers": workers, "cold_s": cold, "wall_s": wall, "evals_per_s": len(timed) / wall,
            "top1": [r.top1 for r in results], "kl": [r.kl for r in results]}


def main() -> int:
    args = _args()
    console = Console(width=140)
    torch.manual_seed(0)
    spec = get_model_spec("resnet56")
    teacher = load_model(spec, shared_dir() / "models" / "cifar10-resnet" / "resnet56-4bfd9763.th")
    config = DataConfig(seed=0, heldout_images=args.heldout)
    data = prepare_data(spec, shared_dir() / "datasets" / "cifar10", config)
    shared = Evaluator(teacher, spec.blocks(), spec.input_shape, EvalData.from_prepared(data),
                       sensitivity_of(teacher, spec, data, config))
    arms = args.arms.split(",")
    pool = configs(spec, 8 + args.evals)
    warmup, timed = pool[:8], pool[8:]
    rows = []
    report = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
              "settings": vars(args) | {"out": str(args.out)}, "rows": rows}
    for round_index in range(args.rounds):
        for arm in arms:
            row = {**run_arm(arm, shared, warmup, timed), "round": round_index}
            reference = next(r for r in [*rows, row] if r["arm"] == arms[0])
            row["same_results_as_" + arms[0]] = row["top1"] == reference["top1"] and row["kl"] == reference["kl"]
            rows.append(row)
            console.print(f"round {round_index} {arm}: {row['evals_per_s']:.3f} evals/s, cold {row['cold_s']:.1f} s")
            report["summary"] = _summarise(rows, [a for a in arms if any(r["arm"] == a for r in rows)])
            atomic_write_json(args.out, report)  # after every arm: an interrupted benchmark keeps what it measured
    _print(console, report["summary"], arms[0])
    console.print(f"written: {args.out}")
    return 0


def _summarise(rows: list[dict], arms: list[str]) -> list[dict]:
    base = statistics.median(r["evals_per_s"] for r in rows if r["arm"] == arms[0])
    out = []
    for arm in arms:
        mine = [r for r in rows if r["arm"] == arm]
        rates = [r["evals_per_s"] for r in mine]
        out.append({"arm": arm, "workers": mine[0]["workers"], "evals_per_s": statistics.median(rates),
                    "range": [min(rates), max(rates)], "speedup": statistics.median(rates) / base,
                    "cold_s": statistics.median(r["cold_s"] for r in mine),
                    "same_results": all(r["same_results_as_" + arms[0]] for r in mine)})
    return out


def _print(console: Console, summary: list[dict], base: str) -> None:
    table = Table(title=f"Candidate evaluations per second (ResNet-56, CIFAR-10), against {base}")
    for column in ("arm", "workers", "evals/s median [range]", "speedup", "cold start s", "same results"):
        table.add_column(column)
    for s in summary:
        table.add_row(s["arm"], str(s["workers"]), f"{s['evals_per_s']:.3f} [{s['range'][0]:.3f}-{s['range'][1]:.3f}]",
                      f"{s['speedup']:.2f}x", f"{s['cold_s']:.1f}", "yes" if s["same_results"] else "NO")
    console.print(table)


if __name__ == "__main__":
    raise SystemExit(main())
