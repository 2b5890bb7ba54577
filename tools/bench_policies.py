"""Benchmark: what do compression policies really buy on a target, measured on exported engines?

ResNet-56 (pretrained), CIFAR-10 from the shared data, for each target: the uncompressed FP32 model, all-INT8,
uniform 50% inner width FP32, uniform 50% + INT8, and a Fisher-guided non-uniform FP32 policy with the same
predicted latency budget as uniform 50%. Every policy (the uncompressed control included) gets the same
distillation fine-tune, so the comparison is fair: the shared JPEGs differ from the original CIFAR pixels and
any fine-tune raises accuracy. Reports predicted latency (from the table), measured latency and speedup
(interleaved against the uncompressed FP32 engine), top-1 of the exported engine on the test split, size.

    python tools/bench_policies.py                       # both CPU targets, 1 epoch over 10,000 images
    python tools/bench_policies.py --targets cpu-ort-1t --finetune-epochs 0.2 --test-per-class 100
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from hirelc_deploy.apply import DistillConfig
from hirelc_deploy.data import open_dataset
from hirelc_deploy.errors import HirelcError
from hirelc_deploy.artifacts import load_manifest
from hirelc_deploy.artifacts.artifact import write_artifact
from hirelc_deploy.jobs.profile import measure_table
from hirelc_deploy.latency import default_table_path, load_table
from hirelc_deploy.models import get_model_spec
from hirelc_deploy.pipeline import DataConfig, apply_policy, load_model, prepare_data, sensitivity_of, static_batches
from hirelc_deploy.runs import atomic_write_json, atomic_write_text
from hirelc_deploy.search import SearchSpace, nearest_widths, plan_policy
from hirelc_deploy.search.prior import DamageModel
from hirelc_deploy.search.wall import repair
from hirelc_deploy.settings import REPO_ROOT, shared_dir, tables_dir
from hirelc_deploy.targets import current_fingerprint, load_target

MODEL = "resnet56"


def _policies(table, sensitivity):
    n = len(table.blocks)
    full = [b.full_width for b in table.blocks]
    half = nearest_widths(table, 0.5)
    uniform = plan_policy(table, half, ["fp32"] * n, planned="uniform 50% fp32")
    # FP32 only and no block removal: this benchmark compares width allocations at one precision.
    space = SearchSpace(table, ["fp32"], allow_removal=False)
    greedy = repair(space, DamageModel(space, sensitivity), space.full_index, uniform.predicted_latency_ms)
    fisher, _ = space.decode(greedy)
    return {
        "fp32 (uncompressed)": plan_policy(table, full, ["fp32"] * n, planned="control"),
        "int8": plan_policy(table, full, ["int8"] * n, planned="all int8"),
        "uniform50 fp32": uniform,
        "uniform50 int8": plan_policy(table, half, ["int8"] * n, planned="uniform 50% int8"),
        "fisher fp32": plan_policy(table, fisher, ["fp32"] * n, planned="fisher-greedy at uniform50 budget"),
    }


def _bench(model: Path, target: str, data: Path, per_class: int | None, baseline: Path | None) -> dict:
    """Run ``hirelc bench`` in a fresh process: after fine-tuning, this process's own thread pools and memory
    slow ONNX Runtime down by 10-15%, which is not what a deployed engine sees."""
    cmd = [sys.executable, "-m", "hirelc_deploy.cli", "--quiet", "bench", str(model), "--target", target,
           "--data", str(data), "--json", "--out", str(model.with_suffix(".bench.json"))]
    cmd += ["--limit", str(per_class)] if per_class else []
    cmd += ["--baseline", str(baseline)] if baseline else []
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"bench failed for {model}: {done.stderr.strip()}")
    return json.loads(done.stdout)


def _reusable(out: Path, policy) -> bool:
    """An artifact already exported for exactly this policy, intact (so a rerun only re-measures)."""
    try:
        manifest = load_manifest(out)
    except HirelcError:
        return False
    return manifest.policy["blocks"] == policy.to_dict()["blocks"] and not manifest.verify(out)


def _markdown(rows: list[dict], meta: dict) -> str:
    lines = [f"Fine-tune for every row: {meta['finetune']}; test images: {meta['test_images']}; "
             f"uncompressed model without fine-tune: top-1 {100 * meta['pretrained_top1']:.2f}%", ""]
    for target in dict.fromkeys(r["target"] for r in rows):
        lines += [f"## {MODEL} on {target}", "",
                  "| policy | predicted ms (table) | measured ms | spread ms | speedup (measured) | top-1 engine | "
                  "size MB |", "|---|---|---|---|---|---|---|"]
        for r in (r for r in rows if r["target"] == target):
            lines.append(f"| {r['policy']} | {r['predicted_ms']:.4f} | {r['measured_ms']:.4f} | {r['spread_ms']:.4f} | "
                         f"{r['speedup']:.2f}x | {100 * r['top1']:.2f}% | {r['bytes'] / 1e6:.2f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    # The benchmarks read and write the repository's measured tables (their committed inputs), not the user's
    # $HIRELC_HOME/tables; an explicit $HIRELC_TABLES still wins.
    os.environ.setdefault("HIRELC_TABLES", str(REPO_ROOT / "latency_tables"))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", nargs="+", default=["cpu-ort-1t", "cpu-ort-b32"])
    parser.add_argument("--data", type=Path, default=shared_dir() / "datasets" / "cifar10")
    parser.add_argument("--weights", type=Path,
                        default=shared_dir() / "models" / "cifar10-resnet" / "resnet56-4bfd9763.th")
    parser.add_argument("--finetune-epochs", type=float, default=1.0)
    parser.add_argument("--finetune-images", type=int, default=10_000)
    parser.add_argument("--test-per-class", type=int, default=None, help="test images per class (default all)")
    parser.add_argument("--work", type=Path, default=REPO_ROOT / "runs" / "bench_policies")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "tools" / "results" / "policies")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse", action="store_true",
                        help="keep artifacts already exported for the same policy; only re-measure them")
    args = parser.parse_args()
    console = Console()
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    spec = get_model_spec(MODEL)
    teacher = load_model(spec, args.weights)
    config = DataConfig(seed=args.seed, train_images=args.finetune_images)
    distill_config = DistillConfig(epochs=args.finetune_epochs)
    console.print("decoding images")
    data = prepare_data(spec, args.data, config)
    test_images = len(open_dataset(args.data, "test", limit_per_class=args.test_per_class))
    sensitivity = sensitivity_of(teacher, spec, data, config)
    students: dict[tuple, torch.nn.Module] = {}
    rows, pretrained_top1 = [], None
    for target_name in args.targets:
        target = load_target(target_name)
        table_path = default_table_path(tables_dir(), spec.key, target.name)
        if table_path.exists():
            table = load_table(table_path)
            table.check_device(current_fingerprint(target), source=str(table_path))
        else:
            console.print(f"profiling {MODEL} on {target.name}")
            table = measure_table(spec, target)
            table.save(table_path)
        shape = (target.batch_size, *spec.input_shape)
        calibration = static_batches(data.train, data, target.batch_size, config.calibration_images)
        checks = static_batches(data.heldout, data, target.batch_size, max(64, target.batch_size))
        for label, policy in _policies(table, sensitivity).items():
            out = args.work / target.name / label.replace(" ", "_").replace("(", "").replace(")", "")
            key = tuple(policy.widths)
            if not (args.reuse and _reusable(out, policy)):
                if key not in students:  # fine-tuning is FP32; INT8 is applied after it, per target
                    start = time.perf_counter()
                    students[key], _, _ = apply_policy(teacher, spec, policy, data, config, distill_config,
                                                    sensitivity, "fisher")
                    console.print(f"  fine-tuned {label} widths in {time.perf_counter() - start:.0f} s")
                with torch.no_grad():
                    write_artifact(students[key], teacher, spec, policy, shape, calibration, checks, out,
                                   table.fingerprint, {"epochs": distill_config.epochs})
            manifest = load_manifest(out)
            result = _bench(out / "model.onnx", target.name, args.data, args.test_per_class,
                            out / "baseline_fp32.onnx")
            if pretrained_top1 is None:
                pretrained_top1 = _bench(out / "baseline_fp32.onnx", target.name, args.data, args.test_per_class,
                                         None)["top1"]
            lat = result["latency_ms"]
            row = {"target": target.name, "policy": label, "predicted_ms": policy.predicted_latency_ms,
                   "predicted_kind": table.kind, "measured_ms": lat["median_ms"],
                   "spread_ms": lat["q3_ms"] - lat["q1_ms"],
                   "baseline_ms": result["baseline_latency_ms"]["median_ms"], "speedup": result["speedup"],
                   "top1": result["top1"], "bytes": result["file_bytes"], "widths": policy.widths,
                   "precisions": policy.precisions, "int8_kernels": manifest.quantized_blocks,
                   "top1_agreement_with_torch": manifest.checks["final_top1_agreement_with_torch"]}
            rows.append(row)
            console.print(f"  {target.name} {label}: predicted {row['predicted_ms']:.4f} ms, measured "
                          f"{row['measured_ms']:.4f} ms ({row['speedup']:.2f}x), top-1 {100 * row['top1']:.2f}%")
    meta = {"finetune": f"{args.finetune_epochs} epoch(s) over {len(data.train)} train images, KD T=4 alpha=0.9",
            "test_images": test_images, "pretrained_top1": pretrained_top1,
            "sensitivity_relative": [b.relative for b in sensitivity.blocks]}
    atomic_write_json(args.out.with_suffix(".json"), {"meta": meta, "rows": rows})
    atomic_write_text(args.out.with_suffix(".md"), _markdown(rows, meta))
    console.print(_markdown(rows, meta))


if __name__ == "__main__":
    main()
