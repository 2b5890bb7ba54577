"""Benchmark: memory stays bounded whatever the size of the image folder.

Generates ImageFolder trees of small JPEGs (10 classes, ``train/`` of N images and a 200-image ``test/``), then
runs ``hirelc sensitivity`` and a tiny ``hirelc compress`` (ResNet-20, public checkpoint, a fast table-profiling
target) on each, streamed and decoded into memory, each in a fresh process, and reports the peak resident memory
of the process (``ru_maxrss``) and of its largest child (DataLoader workers, isolated measurement processes). A
last pair fine-tunes on 100,000 images of the biggest folder, streamed and decoded, to show what streaming buys
when the images a run touches grow.

Prints a table and writes ``tools/results/bench_data_scale.json``.

    python tools/bench_data_scale.py                       # 20,000 and 200,000 images (about 30 min on 2 cores)
    python tools/bench_data_scale.py --sizes 2000,20000 --big-finetune 0 --work /tmp/scale_smoke
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CLASSES = 10
TARGET = """schema_version = 1
name = "bench-scale"
description = "fast profiling target for the data-scale benchmark (memory is measured, not latency)"
backend = "onnxruntime"
execution_provider = "CPUExecutionProvider"
precisions = ["fp32", "int8"]
threads = 1
batch_size = 1
channel_multiple = 4
width_fractions = [0.5, 1.0]

[measure]
warmup_runs = 3
bursts = 3
runs_per_burst = 5
profile_runs = 5
max_retries = 0
max_wait_s = 2.0
"""

# Runs the CLI in this process and reports its peak memory and its children's, whatever the exit.
CHILD = r"""
import json, resource, runpy, sys, time
start = time.perf_counter()
sys.argv = ["hirelc", *sys.argv[1:]]
code = 0
try:
    runpy.run_module("hirelc_deploy.cli", run_name="__main__")
except SystemExit as exc:
    code = exc.code or 0
print("RESULT " + json.dumps({"exit": code, "wall_s": time.perf_counter() - start,
      "self_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
      "child_peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def _write_class(job: tuple[str, int, int, int]) -> None:
    folder, label, count, seed = job
    from PIL import Image

    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        pixels = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
        pixels[..., label % 3] //= 2
        Image.fromarray(pixels).save(os.path.join(folder, f"{i:06d}.jpg"), quality=90)


def make_folder(root: Path, train_images: int) -> Path:
    """``root/train`` (``train_images`` JPEGs over 10 classes) and ``root/test`` (20 per class), made once."""
    done = root / "COMPLETE"
    if done.exists():
        return root
    jobs = [(str(root / split / f"class{c}"), c, count // CLASSES, hash((split, c)) % 2**32)
            for split, count in (("train", train_images), ("test", 20 * CLASSES)) for c in range(CLASSES)]
    with Pool(os.cpu_count()) as pool:
        pool.map(_write_class, jobs)
    done.write_text("ok")
    return root


def run(args: list[str], env: dict) -> dict:
    """``hirelc ARGS`` in a fresh process: exit code, wall time, peak memory of the process and of its children."""
    done = subprocess.run([sys.executable, "-c", CHILD, "-q", *args], env=env, capture_output=True, text=True,
                          check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines or json.loads(lines[-1][7:])["exit"] != 0:
        raise SystemExit(f"hirelc {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][7:])


def measure(args: argparse.Namespace, sizes: list[int]) -> list[dict]:
    """Generate the folders, profile the table once, and run the matrix; one row per run (also printed)."""
    weights = next((args.shared / "models" / "cifar10-resnet").glob("resnet20-*.th"))
    home = args.work / "home"
    (home / "targets").mkdir(parents=True, exist_ok=True)
    (home / "targets" / "bench-scale.toml").write_text(TARGET)
    env = {**os.environ, "HIRELC_HOME": str(home), "OMP_NUM_THREADS": "2"}
    env.pop("HIRELC_TABLES", None)
    env.pop("HIRELC_PROFILES", None)
    folders = {}
    for n in sizes:
        start = time.perf_counter()
        folders[n] = make_folder(args.work / f"images_{n}", n)
        print(f"folder of {n} images ready ({time.perf_counter() - start:.0f} s)", flush=True)
    run(["profile", "--model", "resnet20", "--target", "bench-scale", "--run-dir", str(args.work / "profile")], env)

    def compress(folder: Path, loading: str, tag: str, finetune_images: int = 10_000) -> list[str]:
        return ["compress", "--model", "resnet20", "--weights", str(weights), "--data", str(folder),
                "--target", "bench-scale", "--latency-budget", "0.7x", "--evals", "3", "--finalists", "1",
                "--finetune-epochs", str(round(2000 / finetune_images, 4)), "--finetune-images", str(finetune_images),
                "--heldout-images", "500", "--data-loading", loading, "--workers", "2",
                "--run-dir", str(args.work / "runs" / f"{tag}-{time.time_ns()}")]

    rows = []
    for repeat in range(args.repeats):
        for loading in args.loadings.split(","):  # sizes interleaved within each loading
            for n in sizes:
                sens = run(["sensitivity", "--model", "resnet20", "--weights", str(weights), "--data",
                            str(folders[n]), "--samples", "256", "--data-loading", loading, "--workers", "2"], env)
                rows.append({"job": "sensitivity", "train_images": n, "loading": loading, "finetune_images": 0,
                             "repeat": repeat, **sens})
                print(rows[-1], flush=True)
                rows.append({"job": "compress", "train_images": n, "loading": loading, "finetune_images": 10_000,
                             "repeat": repeat, **run(compress(folders[n], loading, f"{n}-{loading}"), env)})
                print(rows[-1], flush=True)
        for loading in args.loadings.split(",") if args.big_finetune else ():
            rows.append({"job": "compress", "train_images": sizes[-1], "loading": loading,
                         "finetune_images": args.big_finetune, "repeat": repeat,
                         **run(compress(folders[sizes[-1]], loading, f"big-{loading}", args.big_finetune), env)})
            print(rows[-1], flush=True)

    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="20000,200000", help="train images of each generated folder")
    parser.add_argument("--loadings", default="stream,memory")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of the whole matrix (peak memory varies "
                        "with the allocator: medians are compared)")
    parser.add_argument("--big-finetune", type=int, default=100_000, help="fine-tuning images of the last pair "
                        "(0: skip it)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/hirelc_data_scale"))
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("HIRELC_SHARED", REPO.parent / "shared")))
    parser.add_argument("--out", type=Path, default=REPO / "tools" / "results" / "bench_data_scale.json")
    parser.add_argument("--rows-from", type=Path, help="summarise the rows an earlier (possibly interrupted) run "
                        "printed to this log instead of measuring")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.rows_from:
        rows = [ast.literal_eval(line) for line in args.rows_from.read_text().splitlines() if line.startswith("{")]
    else:
        rows = measure(args, sizes)
    print(f"\n{'job':12s}{'images':>9s}{'fine-tune':>10s}{'loading':>9s}{'peak MiB (median, min-max)':>30s}"
          f"{'child MiB':>11s}{'wall s':>8s}")
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["job"], r["train_images"], r["finetune_images"], r["loading"]), []).append(r)
    medians = {}
    for (job, n, finetune, loading), runs in groups.items():
        peaks = [r["self_peak_mib"] for r in runs]
        medians[(job, n, finetune, loading)] = statistics.median(peaks)
        print(f"{job:12s}{n:9d}{finetune:10d}{loading:>9s}"
              f"{f'{statistics.median(peaks):.0f} ({min(peaks):.0f}-{max(peaks):.0f})':>30s}"
              f"{statistics.median(r['child_peak_mib'] for r in runs):11.0f}"
              f"{statistics.median(r['wall_s'] for r in runs):8.0f}")
    growth = {}
    for (job, n, finetune, loading), peak in medians.items():
        first = medians.get((job, sizes[0], finetune, loading))
        if n == sizes[-1] and first and len(sizes) > 1:
            growth[f"{job}/{loading}"] = peak / first - 1
            print(f"peak memory (median), {sizes[-1]} vs {sizes[0]} images, {job}, {loading}: "
                  f"{100 * growth[f'{job}/{loading}']:+.1f}%")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"sizes": sizes, "machine": platform.processor() or platform.machine(),
                                    "cpus": os.cpu_count(), "rows": rows, "growth": growth}, indent=2))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
