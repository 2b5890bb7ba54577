"""Benchmark: INT8 engines with and without the NHWC entry of their residual streams (``artifacts/ort_int8.py``).

For each model: the all-INT8 network (the blocks INT8, stem and head FP32, as every policy has them) written as
earlier versions wrote it ("before") and as this version writes it ("after"), and the FP32 network; the layout
Transposes counted in ONNX Runtime's optimised graph of each; then the three timed interleaved in ``--processes``
fresh processes (the target's own measurement protocol). Reports each process's figures, the after/before ratio
(median and range over processes) and which processes ran in the slow state by ``verdict.fast_state``.

    python tools/bench_int8_layout.py                       # resnet20 and resnet56 on cpu-ort-1t, 7 processes
    python tools/bench_int8_layout.py --models resnet56 --processes 12
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from rich.console import Console
from rich.table import Table

from hirelc_deploy.artifacts import export_onnx, quantize_blocks
from hirelc_deploy.isolation import run_isolated
from hirelc_deploy.latency.profile import model_input_shape
from hirelc_deploy.models import get_model_spec
from hirelc_deploy.runs import atomic_write_json, atomic_write_text
from hirelc_deploy.runtime.onnxruntime import measure_latency, session_settings
from hirelc_deploy.settings import REPO_ROOT
from hirelc_deploy.targets import load_target
from hirelc_deploy.verdict import fast_state
from hirelc_agent.ort_measure import make_session, session_options

VARIANTS = ("before", "after", "fp32")


def optimised_ops(path: Path, target) -> collections.Counter:
    """Op types of the graph ONNX Runtime runs for ``path`` on ``target`` (its optimiser's output)."""
    settings = session_settings(target)
    options = session_options(settings)
    options.optimized_model_filepath = str(path.with_suffix(".optimised.onnx"))
    make_session(path, settings, options)
    return collections.Counter(node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node)


def build(model: str, target, directory: Path) -> dict[str, Path]:
    spec = get_model_spec(model)
    shape = model_input_shape(spec, target)
    fp32 = export_onnx(spec.build(), tuple(shape), directory / f"{model}_fp32.onnx")
    rng = np.random.default_rng(0)
    calibration = [rng.standard_normal(shape, dtype=np.float32) for _ in range(4)]
    prefixes = [b.onnx_prefix for b in spec.blocks()]
    return {"before": quantize_blocks(fp32, directory / f"{model}_before.onnx", prefixes, calibration, False),
            "after": quantize_blocks(fp32, directory / f"{model}_after.onnx", prefixes, calibration, True),
            "fp32": fp32}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet20,resnet56")
    parser.add_argument("--target", default="cpu-ort-1t")
    parser.add_argument("--processes", type=int, default=7)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "tools" / "results" / "bench_int8_layout")
    args = parser.parse_args()
    target = load_target(args.target)
    console = Console()
    report = {"target": target.name, "processes": args.processes, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            paths = build(model, target, Path(tmp))
            ops = {name: optimised_ops(path, target) for name, path in paths.items()}
            rows = []
            for k in range(args.processes):
                timings = run_isolated(measure_latency, paths, target)
                rows.append({name: timings[name].median_ms for name in VARIANTS})
                console.print(f"{model} process {k + 1}: " + ", ".join(f"{n} {rows[-1][n]:.4f} ms" for n in VARIANTS))
            ratio = [r["after"] / r["before"] for r in rows]
            report["models"][model] = {
                "transposes": {n: ops[n]["Transpose"] for n in VARIANTS},
                "qlinearconv": {n: ops[n]["QLinearConv"] for n in VARIANTS},
                "processes_ms": rows,
                "after_over_before": {"median": statistics.median(ratio), "min": min(ratio), "max": max(ratio)},
                "speedup_vs_fp32": {n: statistics.median(r["fp32"] / r[n] for r in rows) for n in ("before", "after")},
                "fast_state": {n: fast_state([r[n] for r in rows]) for n in VARIANTS},
            }
    atomic_write_json(args.out.with_suffix(".json"), report)
    atomic_write_text(args.out.with_suffix(".md"), markdown(report))
    table = Table(title=f"INT8 layout on {target.name}, {args.processes} fresh processes")
    for column in ("model", "Transposes before", "after", "QLinearConv before / after", "after/before median "
                   "[min-max]", "x FP32 before", "x FP32 after", "slow-state processes (after)"):
        table.add_column(column, justify="right")
    for model, m in report["models"].items():
        table.add_row(*_cells(model, m), str(m["fast_state"]["after"].count(False)))
    console.print(table)
    console.print(f"wrote {args.out.with_suffix('.json')} and .md")
    return 0


def _cells(model: str, m: dict) -> list[str]:
    r = m["after_over_before"]
    return [model, str(m["transposes"]["before"]), str(m["transposes"]["after"]),
            f"{m['qlinearconv']['before']} / {m['qlinearconv']['after']}",
            f"{r['median']:.3f} [{r['min']:.3f}-{r['max']:.3f}]", f"{m['speedup_vs_fp32']['before']:.2f}x",
            f"{m['speedup_vs_fp32']['after']:.2f}x"]


def markdown(report: dict) -> str:
    lines = [f"# INT8 residual streams in NHWC: {report['target']}, {report['processes']} fresh processes", "",
             "| model | Transposes before | after | QLinearConv before / after | after/before median [min-max] "
             "| speedup vs FP32 before | after |", "|---|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(_cells(model, m)) + " |" for model, m in report["models"].items()]
    lines += ["", "Each process's medians (ms), interleaved before / after / FP32:", ""]
    for model, m in report["models"].items():
        lines.append(f"- {model}: " + "; ".join(" / ".join(f"{r[n]:.3f}" for n in VARIANTS)
                                               for r in m["processes_ms"]))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
