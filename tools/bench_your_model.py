"""Benchmark: "bring your own model" end to end, on two CIFAR-10 networks defined outside the package.

For each model of ``tools/your_models.py`` (``vgg_small``: a plain VGG stack, blocks found as pairs of
convolutions; ``resnext_small``: ResNeXt bottlenecks with grouped 3x3 convolutions):

1. train it from scratch on the CIFAR-10 train split (SGD with Nesterov momentum, one-cycle cosine learning
   rate, padded-crop + flip augmentation, seeded), report the wall time and top-1 on the test split, and save
   the state_dict;
2. ``hirelc profile --model tools/your_models.py:NAME --input-shape 3x32x32 --target cpu-ort-1t --validate 8``:
   the block latency table and how well it predicts real exported engines (median and max |error| % for
   FP32-only and for mixed/INT8 configurations);
3. ``hirelc compress ... --weights CKPT --latency-budget 0.5x``: measured latency of the uncompressed and the
   compressed engine (median over fresh processes, with the spread), speedup, the budget verdict, top-1
   before/after on the test split, file sizes.

Every ``hirelc`` command runs in a subprocess with ``HIRELC_TABLES`` pointed inside ``--out-dir``, so no
table of ``$HIRELC_HOME`` is read or written. Phases are logged with timestamps to ``OUT_DIR/progress.log``
(``timing: yes`` marks phases that time engines: keep the machine quiet then). Prints a table and writes
``tools/results/bench_your_model.json`` (rewritten after every phase, ``complete: false`` until the end).

    python tools/bench_your_model.py                                   # both models, about an hour on 2 cores
    python tools/bench_your_model.py --models vgg_small --skip-train   # reuse the checkpoint, profile + compress
    python tools/bench_your_model.py --models vgg_small --epochs 0.1 --train-images 2000 --validate 2 \\
        --evals 4 --finetune-epochs 0.05 --out-dir runs/bench_your_model_smoke --results runs/smoke.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from hirelc_deploy.runs import atomic_write_json
from hirelc_deploy.settings import REPO_ROOT, shared_dir
from train_cifar import MODELS_FILE, decoded, rel, train

INPUT_SHAPE = "3x32x32"
DEFAULT_EPOCHS = {"vgg_small": 3.0, "resnext_small": 5.0}
PHASES = ("train", "profile", "compress")
console = Console() if sys.stdout.isatty() else Console(width=240)  # log files: no wrapping at 80


# ---------------------------------------------------------------------------------------------- bookkeeping


def now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


class ProgressLog:
    """Timestamped phase lines in OUT_DIR/progress.log (and on the console)."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def line(self, text: str) -> None:
        entry = f"{now()}  {text}"
        with self.path.open("a") as f:
            f.write(entry + "\n")
        console.print(entry, highlight=False, markup=False, soft_wrap=True)

    def start(self, model: str, phase: str, timing: str, detail: str = "") -> float:
        self.line(f"[{model}] {phase} START (timing: {timing}){' ' + detail if detail else ''}")
        return time.perf_counter()

    def end(self, model: str, phase: str, started: float, detail: str = "") -> float:
        wall = time.perf_counter() - started
        self.line(f"[{model}] {phase} END after {wall:.0f} s{' ' + detail if detail else ''}")
        return wall


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_state() -> dict:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "dirty_files": git("status", "--short").splitlines()}


def hirelc_command() -> list[str]:
    exe = Path(sys.executable).parent / "hirelc"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "hirelc_deploy.cli"]


def run_hirelc(args: list[str], env: dict, log: Path) -> tuple[subprocess.CompletedProcess, float, str]:
    """``hirelc ARGS`` from the repository root; stderr (progress, -v log) goes to ``log``."""
    cmd = hirelc_command() + args
    shown = "HIRELC_TABLES=" + shlex.quote(rel(Path(env["HIRELC_TABLES"]))) + " hirelc " + shlex.join(args)
    start = time.perf_counter()
    with log.open("w") as err:
        done = subprocess.run(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=err, text=True,
                              check=False)
    return done, time.perf_counter() - start, shown


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def fresh_dir(path: Path) -> Path:
    """``path`` for a new run: an earlier run there is kept, renamed with its modification time."""
    if path.exists():
        stamp = dt.datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y%m%d-%H%M%S")
        path.rename(path.with_name(f"{path.name}.old-{stamp}"))
    return path


def inspect(name: str, ckpt: Path, env: dict, work: Path, target: str) -> dict:
    args = ["inspect", "--model", f"{MODELS_FILE}:{name}", "--input-shape", INPUT_SHAPE, "--target", target,
            "--weights", rel(ckpt), "--json"]
    done, wall, shown = run_hirelc(args, env, work / "inspect.stderr.log")
    out = {"command": shown, "wall_s": wall, "returncode": done.returncode}
    if done.returncode:
        out["error"] = tail(work / "inspect.stderr.log")
        return out
    out["result"] = json.loads(done.stdout)
    return out


def profile(name: str, env: dict, work: Path, target: str, validate: int) -> dict:
    run_dir = fresh_dir(work / "profile")
    args = ["-v", "profile", "--model", f"{MODELS_FILE}:{name}", "--input-shape", INPUT_SHAPE, "--target",
            target, "--validate", str(validate), "--json", "--run-dir", rel(run_dir)]
    done, wall, shown = run_hirelc(args, env, work / "profile.stderr.log")
    out = {"command": shown, "wall_s": wall, "returncode": done.returncode, "run_dir": rel(run_dir)}
    if done.returncode:
        out["error"] = tail(work / "profile.stderr.log")
        return out
    summary = json.loads(done.stdout)
    out["summary"] = summary
    validation = json.loads((run_dir / "validation.json").read_text())
    out["rows"] = [{k: r[k] for k in ("label", "widths", "precisions", "predicted_ms", "measured_ms",
                                      "measured_spread_ms", "abs_pct_error")} for r in validation["rows"]]
    v = summary["validation"]
    out["goals"] = {
        "fp32_median_le_3pct": v["fp32"].get("median_ape", math.inf) <= 3.0,
        "mixed_median_le_5pct": v["int8_or_mixed"].get("median_ape", math.inf) <= 5.0,
        "max_le_10pct": v["all"].get("max_ape", math.inf) <= 10.0,
    }
    table = json.loads(Path(summary["table"]).read_text())
    out["table_kind"] = table.get("kind")
    return out


def compress(name: str, ckpt: Path, env: dict, work: Path, args) -> dict:
    run_dir = fresh_dir(work / "compress")
    cli = ["-v", "compress", "--model", f"{MODELS_FILE}:{name}", "--input-shape", INPUT_SHAPE, "--weights",
           rel(ckpt), "--data", rel(args.data), "--target", args.target, "--latency-budget", args.budget,
           "--evals", str(args.evals), "--finetune-epochs", str(args.finetune_epochs), "--seed", str(args.seed),
           "--json", "--run-dir", rel(run_dir)]
    done, wall, shown = run_hirelc(cli, env, work / "compress.stderr.log")
    out = {"command": shown, "wall_s": wall, "returncode": done.returncode, "run_dir": rel(run_dir),
           "evals": args.evals, "finetune_epochs": args.finetune_epochs}
    if done.returncode:
        out["error"] = tail(work / "compress.stderr.log")
        status = run_dir / "status.json"
        out["status"] = json.loads(status.read_text()) if status.exists() else None
        return out
    s = json.loads(done.stdout)
    out["summary"] = s
    latency = json.loads((run_dir / "final_latency.json").read_text())
    bench = json.loads((run_dir / "bench.json").read_text())
    policy = json.loads((run_dir / "policy.json").read_text())
    stages = _stage_times(run_dir / "run.log")
    eng, unc = latency["engine_rounds_ms"], latency["uncompressed_rounds_ms"]
    out["figures"] = {
        "budget": s["budget"], "budget_ms": s["budget_ms"], "verdict": s["verdict"], "meets_budget": s["meets_budget"],
        "latency_kind": s["latency_kind"],
        "uncompressed_ms": latency["uncompressed_ms"], "uncompressed_rounds_ms": unc,
        "compressed_ms": latency["engine_ms"], "compressed_rounds_ms": eng,
        "uncompressed_spread_ms": [min(unc), max(unc)], "compressed_spread_ms": [min(eng), max(eng)],
        "speedup": latency["speedup"], "predicted_ms": s["predicted_ms"],
        "bench_first_process": {"engine": bench.get("latency_ms"), "baseline": bench.get("baseline_latency_ms")},
        "top1_before": s["top1_before"], "top1_after": s["top1_after"], "test_images": s["test_images"],
        "top1_through": s["top1_through"], "bytes_before": s["bytes_before"], "bytes_after": s["bytes_after"],
        "policy": policy.get("blocks"),
    }
    out["stages"] = stages
    return out


def _stage_times(log: Path) -> list[str]:
    """The stage lines of the run's log (to see where the time went)."""
    try:
        return [line for line in log.read_text(errors="replace").splitlines() if "stage" in line.lower()][:60]
    except OSError:
        return []


# ---------------------------------------------------------------------------------------------- report


def pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def print_table(results: dict) -> None:
    """Two tables: training and latency-table validation, then the compress run."""
    first = Table(title=f"training and profile --validate on {results['target']} ({results['machine']['cpu']})")
    for col in ("model", "params", "epochs", "train wall", "test top-1 (torch)", "blocks",
                "FP32 |err| med / max", "mixed/INT8 |err| med / max", "all max", "profile wall"):
        first.add_column(col, justify="left" if col == "model" else "right")
    second = Table(title=f"compress --latency-budget {results['settings']['budget']} (measured on the exported "
                         "engine: median over fresh processes \\[min-max])")
    for col in ("model", "uncompressed ms", "compressed ms", "speedup", "budget ms", "verdict", "top-1 before",
                "top-1 after", "MB before", "MB after", "compress wall"):
        second.add_column(col, justify="left" if col in ("model", "verdict") else "right")
    for name, r in results["models"].items():
        t, p, c = r.get("train") or {}, r.get("profile") or {}, r.get("compress") or {}
        v = (p.get("summary") or {}).get("validation") or {}
        units = (((r.get("inspect") or {}).get("result") or {}).get("units")) or []

        def val(group, v=v):
            g = v.get(group) or {}
            return f"{g['median_ape']:.2f}% / {g['max_ape']:.2f}% (n={g['count']})" if g.get("count") else "-"

        first.add_row(name, f"{t['params'] / 1e6:.3f} M" if t.get("params") else "-", f"{t.get('epochs', '-')}",
                      f"{t['wall_s'] / 60:.1f} min" if t.get("wall_s") else "-", pct(t.get("test_top1_torch")),
                      str(len(units)) if units else "-", val("fp32"), val("int8_or_mixed"),
                      f"{v['all']['max_ape']:.2f}%" if v.get("all", {}).get("count") else
                      (p.get("error", "-")[-60:] if p.get("error") else "-"),
                      f"{p['wall_s'] / 60:.1f} min" if p.get("wall_s") else "-")
        f = c.get("figures")
        if not f:
            second.add_row(name, *["-"] * 4, (c.get("error") or "not run")[-80:], *["-"] * 5)
            continue

        def lat(key, f=f):
            lo, hi = f[f"{key}_spread_ms"]
            return f"{f[f'{key}_ms']:.4f} [{lo:.4f}-{hi:.4f}]"

        second.add_row(name, lat("uncompressed"), lat("compressed"), f"{f['speedup']:.2f}x", f"{f['budget_ms']:.4f}",
                       f["verdict"], pct(f["top1_before"]), pct(f["top1_after"]), f"{f['bytes_before'] / 1e6:.3f}",
                       f"{f['bytes_after'] / 1e6:.3f}", f"{c['wall_s'] / 60:.1f} min")
    console.print(first)
    console.print(second)


# ---------------------------------------------------------------------------------------------- main


def parse_epochs(text: str, models: list[str]) -> dict[str, float]:
    if "=" not in text:
        return {m: float(text) for m in models}
    epochs = dict(DEFAULT_EPOCHS)
    for part in text.split(","):
        key, _, value = part.partition("=")
        epochs[key.strip()] = float(value)
    return epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="vgg_small,resnext_small")
    parser.add_argument("--epochs", default=",".join(f"{k}={v:g}" for k, v in DEFAULT_EPOCHS.items()),
                        help="training epochs: one number for every model, or NAME=E,NAME=E")
    parser.add_argument("--evals", type=int, default=80, help="compress --evals")
    parser.add_argument("--finetune-epochs", type=float, default=1.0, help="compress --finetune-epochs")
    parser.add_argument("--validate", type=int, default=8, help="profile --validate")
    parser.add_argument("--budget", default="0.5x")
    parser.add_argument("--target", default="cpu-ort-1t")
    parser.add_argument("--data", type=Path, default=shared_dir() / "datasets" / "cifar10")
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "runs" / "bench_your_model")
    parser.add_argument("--results", type=Path, default=REPO_ROOT / "tools" / "results" / "bench_your_model.json")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="where decoded CIFAR-10 tensors are cached (default OUT_DIR/cache)")
    parser.add_argument("--skip-train", action="store_true", help="reuse OUT_DIR/NAME/NAME.pt (and its train.json)")
    parser.add_argument("--phases", default=",".join(PHASES),
                        help="phases to run; the others' results are read back from OUT_DIR/NAME/ if there")
    parser.add_argument("--train-images", type=int, default=None, help="train on the first N (smoke tests)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    epochs = parse_epochs(args.epochs, models)
    phases = [p for p in args.phases.split(",") if p]
    if args.skip_train:
        phases = [p for p in phases if p != "train"]
    out_dir = args.out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    log = ProgressLog(out_dir / "progress.log")
    env = {**os.environ, "HIRELC_TABLES": str(out_dir / "tables")}
    torch.set_num_threads(os.cpu_count() or 1)

    results = {
        "benchmark": "bring your own model: train, profile --validate, compress at a latency budget",
        "date": now(), "complete": False, "target": args.target,
        "machine": {"cpu": cpu_model(), "logical_cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "onnxruntime": __import__("onnxruntime").__version__},
        "git": git_state(),
        "settings": {"models": models, "epochs": {m: epochs[m] for m in models}, "evals": args.evals,
                     "finetune_epochs": args.finetune_epochs, "validate": args.validate, "budget": args.budget,
                     "data": rel(args.data), "out_dir": rel(out_dir), "hirelc_tables": rel(out_dir / "tables"),
                     "seed": args.seed, "train_images": args.train_images, "phases": phases},
        "models": {},
    }
    if args.results.exists():  # keep the figures of models this invocation does not run
        try:
            previous = json.loads(args.results.read_text())
            results["models"].update({k: v for k, v in previous.get("models", {}).items() if k not in models})
        except (OSError, json.JSONDecodeError):
            pass

    def save() -> None:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.results, results)

    log.line(f"bench_your_model start: models {models}, phases {phases}, epochs {epochs}, evals {args.evals}, "
             f"finetune {args.finetune_epochs}, out {rel(out_dir)}")
    bench_start = time.perf_counter()
    train_set = test_set = None
    for name in models:
        work = out_dir / name
        work.mkdir(parents=True, exist_ok=True)
        ckpt = work / f"{name}.pt"
        entry: dict = {"model_reference": f"{MODELS_FILE}:{name}", "input_shape": INPUT_SHAPE}
        results["models"][name] = entry

        def phase_json(phase: str, work: Path = work) -> Path:
            return work / f"{phase}.json"

        # 1. training
        if "train" in phases:
            if train_set is None:
                started = log.start("data", "decode CIFAR-10", "no")
                cache = args.cache_dir or out_dir / "cache"
                train_set = decoded(args.data, "train", cache)
                test_set = decoded(args.data, "test", cache)
                log.end("data", "decode CIFAR-10", started, f"{len(train_set)} train, {len(test_set)} test")
            subset = train_set if args.train_images is None else train_set.subset(
                torch.randperm(len(train_set), generator=torch.Generator().manual_seed(args.seed))[:args.train_images])
            started = log.start(name, "train", "no (CPU fully loaded)", f"{epochs[name]} epochs")
            entry["train"] = train(name, subset, test_set, epochs[name], args, ckpt)
            entry["train"]["wall_s"] = log.end(name, "train", started,
                                               f"test top-1 {100 * entry['train']['test_top1_torch']:.2f}%")
            atomic_write_json(phase_json("train"), entry["train"])
        elif phase_json("train").exists():
            entry["train"] = json.loads(phase_json("train").read_text())
            entry["train"]["reused"] = True
        if not ckpt.exists():
            log.line(f"[{name}] no checkpoint at {rel(ckpt)}: skipping its hirelc phases")
            save()
            continue
        started = log.start(name, "inspect", "no")
        entry["inspect"] = inspect(name, ckpt, env, work, args.target)
        log.end(name, "inspect", started, f"rc {entry['inspect']['returncode']}")
        save()

        def hirelc_phase(key: str, timing: str, flag: str, measure, describe) -> None:
            """Run one hirelc phase of this model (or reuse its JSON from an earlier run) and log it with
            ``describe``'s figures; called at once, so it sees this iteration's model."""
            if key in phases:
                started = log.start(name, key, timing, flag)
                entry[key] = measure()
                result = entry[key]
                log.end(name, key, started,
                        f"rc {result['returncode']}" + ("" if result["returncode"] else describe(result)))
                atomic_write_json(phase_json(key), entry[key])
            elif phase_json(key).exists():
                entry[key] = {**json.loads(phase_json(key).read_text()), "reused": True}
            save()

        def validation(p: dict) -> str:
            v = p["summary"]["validation"]
            return (f"; FP32 median {v['fp32']['median_ape']:.2f}% max {v['fp32']['max_ape']:.2f}%; "
                    f"mixed median {v['int8_or_mixed']['median_ape']:.2f}% max {v['int8_or_mixed']['max_ape']:.2f}%")

        def outcome(c: dict) -> str:
            f = c["figures"]
            return (f"; {f['uncompressed_ms']:.4f} -> {f['compressed_ms']:.4f} ms ({f['speedup']:.2f}x), "
                    f"budget {f['budget_ms']:.4f} ms: {f['verdict']}; top-1 {pct(f['top1_before'])} -> "
                    f"{pct(f['top1_after'])}")

        # 2. profile + validate, 3. compress
        hirelc_phase("profile", "yes (whole phase)", f"--validate {args.validate}",
                     lambda: profile(name, env, work, args.target, args.validate), validation)
        hirelc_phase("compress", "yes (calibration, finalists and final timing stages; the search between them is "
                     "CPU-bound)", f"--evals {args.evals}", lambda: compress(name, ckpt, env, work, args), outcome)

    results["wall_s"] = time.perf_counter() - bench_start
    results["complete"] = True
    results["finished"] = now()
    save()
    log.line(f"bench_your_model done in {results['wall_s'] / 60:.1f} min; results in {rel(args.results)}")
    print_table(results)


if __name__ == "__main__":
    main()
