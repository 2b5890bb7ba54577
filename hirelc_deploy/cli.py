"""The ``hirelc`` command line: parses flags, calls the library (``hirelc_deploy.profile``, ``compress``,
``export``, ``bench``, ...), and prints what they return. Nothing here decides anything a Python caller could not."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .cli_common import (MODEL_HELP, console, device_option, emit, executor_option, finetune_epochs_option,
                         finetune_minutes_option, input_shape_option, json_option, loading_option, model_arg_option,
                         model_ref, norm_option, preprocess_option, qat_option, ray_address_option, reporter_bars,
                         resize_option, skip_bad_option, state, workers_option)
from .cli_compress import compress_cmd
from .cli_models import inspect_cmd, models_cmd
from .cli_output import print_engine_export, print_validation
from .cli_targets import targets_app
from .errors import HirelcError, InputError
from .records import DataOptions
from .artifacts.artifact import MODEL_NAME
from .artifacts.manifest import MANIFEST_NAME

WORKFLOW = """Make trained CNNs fast on real hardware, with every latency measured on the device.

\b
Workflow (data flows one way: profile -> table -> search -> policy -> export -> bench):
  The main job, in one command (every stage below, with a run directory):
  hirelc compress --model resnet56 --weights W.th --data ../shared/datasets/cifar10
      --target cpu-ort-1t --latency-budget 0.5x --strategy hirelc --evals 100
     Search a per-block width/precision policy under the budget (predicted by the
     table), time the best few for real (closed loop: a miss corrects the table and
     they are chosen again), apply the winner for real, fine-tune, export and
     re-measure the engine in fresh processes. The run directory holds every record
     and report.html (plots of the search, the loop and the result).
  hirelc compress --resume RUN_DIR     continue a run after a crash or kill -9
  hirelc report RUN_DIR                rebuild a run's report.html

\b
  The stages one by one:
  1. hirelc profile --model resnet56 --target cpu-ort-1t --validate 8
     Measure the block latency table of a model on the target's device and check
     that it predicts real exported engines (predicted vs measured latency).
  2. hirelc sensitivity --model resnet56 --weights W.th --data ../shared/datasets/cifar10
     Fisher sensitivity per block on held-out training images.
  3. hirelc plan --table ~/.hirelc/tables/resnet56__cpu-ort-1t.json --fraction 0.5 --precision int8
     Write a policy (inner width and precision per block) with its predicted latency.
  4. hirelc export --model resnet56 --weights W.th --data D --target cpu-ort-1t --policy policy.json --out DIR
     Prune for real, recalibrate BatchNorm, distil, export ONNX (INT8 blocks quantized) + manifest.
  5. hirelc bench DIR/model.onnx --target cpu-ort-1t --data D --baseline DIR/baseline_fp32.onnx
     Measured latency (interleaved with the baseline), top-1 of the engine on the test split, size.
  hirelc models / hirelc targets list what is built in; hirelc targets new NAME
  --threads N --batch B writes a target for this machine ($HIRELC_HOME/targets).

\b
  Your own model: every command takes --model path/to/file.py:factory (or
  package.module:factory) with --model-arg key=value, --input-shape 3x224x224 and
  --mean/--std; --weights is its state_dict. Run the pre-flight first:
  hirelc inspect --model my_nets.py:build --input-shape 3x32x32
     Every block found (kind, inner width, prunable/removable, precisions) and
     every layer left alone, with the reason.

\b
  Your data, and a GPU for training: --data is an ImageFolder root of any size
  (train/ with test/ or val/), decoded into memory or streamed by DataLoader
  workers (--data-loading, --workers), preprocessed the cifar or imagenet way
  (--preprocess, --resize); --device cuda runs Fisher, candidate evaluation,
  BatchNorm recalibration and fine-tuning on the GPU (latency is still measured
  on the target); --skip-bad-images skips and counts undecodable files.

\b
  Profile a device that is not this machine: run hirelc-agent on it (ONNX Runtime,
  no PyTorch; `pip install ./agent`, token in $HIRELC_AGENT_TOKEN), forward its port
  over SSH, then
  hirelc targets new board --agent http://127.0.0.1:8790 --threads 1 --batch 1
     and every command above with --target board times on the device.

\b
  NVIDIA GPUs (TensorRT): the same commands with --target trt-h100-b1 (or -b32).
     On a GPU with TensorRT: measured tables, engines (.engine, timing cache, per-layer
     report checked against the policy), CUDA-event latencies. Without one:
     profile --predict (roofline table) and compress plan with PREDICTED latencies,
     labelled so everywhere; export writes the TensorRT-bound ONNX (Q/DQ, FP16, 2:4).

\b
Every command takes --json (result on stdout for scripts); hirelc -q (no progress),
-v (log each stage), --debug (tracebacks) go before the command. Everything here is
also a Python call: hirelc_deploy.profile / compress / export / bench.
"""

app = typer.Typer(help=WORKFLOW, no_args_is_help=True, add_completion=False, rich_markup_mode=None)
app.add_typer(targets_app, name="targets", help="List the targets (yours and shipped); `targets new` writes one "
              "for this machine or, with --agent, for a remote device.")


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors and DEBUG log records."),
          verbose: bool = typer.Option(False, "--verbose", "-v", help="Log each stage and decision (INFO records) "
                                       "on stderr; a run directory's run.log always gets them."),
          quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or tables, only results.")):
    state.update(debug=debug, quiet=quiet)
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)
    # The level goes on the stderr handler too: a run lowers the package logger to INFO for its run.log,
    # and those records must not reach the terminal unless asked for.
    for handler in logging.getLogger().handlers:
        handler.setLevel(level)


def _fractions(text: Optional[str]) -> Optional[list[float]]:
    if not text:
        return None
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--fractions: expected comma-separated numbers, got '{text}'") from None
    if not values or any(not 0 <= v <= 1 for v in values):
        raise InputError(f"--fractions: every fraction must be in [0, 1] (0 = block removed), got '{text}'")
    return values


@app.command("profile")
def profile_cmd(
    model: str = typer.Option(..., "--model", "-m", help=MODEL_HELP),
    model_args: list[str] = model_arg_option(),
    input_shape: Optional[str] = input_shape_option(),
    mean: Optional[str] = norm_option("--mean"),
    std: Optional[str] = norm_option("--std"),
    target: Optional[str] = typer.Option(None, "--target", "-t", help="Target name (see `hirelc targets`) or a "
                                         ".toml path."),
    targets: Optional[str] = typer.Option(None, "--targets", help="Several targets, comma-separated: each profiled "
                                          "(and validated) with its own table and run directory; with --executor "
                                          "ray, the devices at once, each measured through its own lease."),
    executor: str = executor_option(), ray_address: Optional[str] = ray_address_option(),
    out: Optional[Path] = typer.Option(None, "--out", help="Where to write the table "
                                       "(default $HIRELC_HOME/tables/MODEL__TARGET.json; for your own model MODEL "
                                       "is the factory's name and a digest of its arguments and input)."),
    validate_n: int = typer.Option(0, "--validate", min=0, help="Also export N random configurations and "
                                   "compare predicted with measured latency."),
    table_path: Optional[Path] = typer.Option(None, "--table", help="Validate this existing table instead of "
                                              "measuring a new one."),
    fractions: Optional[str] = typer.Option(None, "--fractions", help="Width fractions to profile, e.g. "
                                            "'0.25,0.5,1' (default: the target's grid)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random validation configurations."),
    force: bool = typer.Option(False, "--force", help="Use a --table measured on another device anyway."),
    predict: bool = typer.Option(False, "--predict", help="No device at hand: build a roofline table from the "
                                 "target's [roofline] figures, labelled predicted everywhere. Never replaces a "
                                 "measured table."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Run directory (default runs/STAMP-profile-...)."),
    as_json: bool = json_option(),
):
    """Measure a block latency table on the target's device (and validate it against real exported engines).

    \b
    Example:
      hirelc profile --model resnet56 --target cpu-ort-1t --validate 8
      hirelc profile --model resnet56 --target trt-h100-b1 --predict     # plan a GPU budget without the GPU
      hirelc profile --model resnet56 --targets cpu-ort-1t,edge-box --executor ray   # two devices at once
    """
    from .jobs.profile import profile
    from .search.executors import make_executor

    if (target is None) == (targets is None):
        raise InputError("--target/--targets: give exactly one of them")
    if targets is not None:
        for flag, value in (("--out", out), ("--table", table_path), ("--predict", predict), ("--run-dir", run_dir)):
            if value:
                raise InputError(f"{flag}: applies to one --target, not to --targets")
        _profile_targets(model_ref(model, model_args, input_shape, mean, std), targets,
                         make_executor(executor, ray_address), validate_n, _fractions(fractions), seed, as_json)
        return
    runner = make_executor(executor, ray_address)
    backend = None
    if runner.name == "ray":  # one target, measured here, through its device's lease like every Ray run's
        from .devices import leased_backend
        from .targets import backend_of, load_target

        loaded = load_target(target)
        target, backend = loaded, leased_backend(backend_of(loaded), loaded, runner.ray)
    with reporter_bars() as reporter:
        result = profile(model_ref(model, model_args, input_shape, mean, std), target, out=out,
                         validate_count=validate_n, table=table_path,
                         fractions=_fractions(fractions), seed=seed, force=force, predict=predict, run_dir=run_dir,
                         reporter=reporter, backend=backend)
    table = result.table
    summary = {"table": str(result.table_path), "kind": table.kind, "run_dir": str(result.run_dir),
               "report": str(result.report), "fixed_ms": table.fixed_ms}
    if predict:
        full = [b.full_width for b in table.blocks]
        summary["predicted_uncompressed_ms"] = {p: table.predict(full, [p] * len(full)) for p in table.precisions}
    if result.validation:
        summary["validation"] = result.validation.summary()
    if as_json:
        emit(summary)
        return
    if state["quiet"]:
        return
    if predict:
        console.print(f"PREDICTED table (roofline, not measured) written to {result.table_path}")
        for precision, ms in summary["predicted_uncompressed_ms"].items():
            console.print(f"  full width, every block {precision}: {ms:.4f} ms predicted")
    if result.validation:
        print_validation(result.validation)
    console.print(f"run directory: {result.run_dir}\nreport: {result.report}")


def _profile_targets(ref, targets: str, executor, validate_n: int, fractions, seed: int, as_json: bool) -> None:
    from .jobs.fleet import profile_fleet

    names = [name.strip() for name in targets.split(",") if name.strip()]
    if not names:
        raise InputError(f"--targets {targets!r}: expected comma-separated target names")
    with reporter_bars() as reporter:
        results = profile_fleet(ref, names, executor=executor, validate_count=validate_n, fractions=fractions,
                                seed=seed, reporter=reporter)
    rows = [{"target": r.table.target, "table": str(r.table_path), "run_dir": str(r.run_dir),
             "report": str(r.report), "fixed_ms": r.table.fixed_ms,
             **({"validation": r.validation.summary()} if r.validation else {})} for r in results]
    if as_json:
        emit(rows)
    elif not state["quiet"]:
        for row, result in zip(rows, results):
            console.print(f"{row['target']}: table {row['table']}, run directory {row['run_dir']}")
            if result.validation:
                print_validation(result.validation)


@app.command("sensitivity")
def sensitivity_cmd(
    model: str = typer.Option(..., "--model", "-m", help=MODEL_HELP),
    model_args: list[str] = model_arg_option(),
    input_shape: Optional[str] = input_shape_option(),
    mean: Optional[str] = norm_option("--mean"),
    std: Optional[str] = norm_option("--std"),
    weights: Path = typer.Option(..., "--weights", "-w", help="Checkpoint (.th/.pt, loaded weights-only)."),
    data: Path = typer.Option(..., "--data", "-d", help="Dataset root (ImageFolder with train/ or CIFAR batches)."),
    samples: int = typer.Option(256, "--samples", min=1, help="Held-out training images for the Fisher."),
    seed: int = typer.Option(0, "--seed"),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the sensitivity JSON here."),
    device: str = device_option(), loading: str = loading_option(), preprocess: str = preprocess_option(),
    resize: Optional[int] = resize_option(), workers: Optional[int] = workers_option(),
    skip_bad: bool = skip_bad_option(),
    as_json: bool = json_option(),
):
    """Fisher-information sensitivity per block (held-out part of the train split, never the test split).

    Example: hirelc sensitivity --model resnet56 --weights resnet56.th --data ../shared/datasets/cifar10
    """
    from .pipeline import measure_sensitivity

    with reporter_bars() as reporter:
        sens = measure_sensitivity(model_ref(model, model_args, input_shape, mean, std), weights, data, samples,
                                   seed, out, reporter, DataOptions(device, loading, preprocess, resize, workers,
                                                                    skip_bad))
    if as_json:
        emit(sens.to_dict())
    elif not state["quiet"]:
        table = Table(title=f"Fisher sensitivity of {sens.model} ({sens.samples} held-out images)")
        for col in ("block", "params", "Fisher trace", "per param", "relative"):
            table.add_column(col, justify="left" if col == "block" else "right")
        for b in sens.blocks:
            bar = "#" * round(20 * b.relative)
            table.add_row(b.name, str(b.params), f"{b.fisher_trace:.4g}", f"{b.fisher_per_param:.3g}",
                          f"{b.relative:.2f} {bar}")
        Console().print(table)


@app.command("plan")
def plan_cmd(
    table_path: Path = typer.Option(..., "--table", help="Latency table of the model on the target."),
    fraction: float = typer.Option(1.0, "--fraction", min=0.0, max=1.0, help="Inner width fraction for every block."),
    precision: str = typer.Option("fp32", "--precision", help="Precision of every block."),
    out: Path = typer.Option(Path("policy.json"), "--out", help="Policy JSON to write."),
    as_json: bool = json_option(),
):
    """Write a uniform policy (same width fraction and precision everywhere) with its predicted latency.

    Example: hirelc plan --table ~/.hirelc/tables/resnet56__cpu-ort-1t.json --fraction 0.5 --precision int8
    """
    from .latency import load_table
    from .pipeline import plan_uniform

    table = load_table(table_path)
    policy = plan_uniform(table, fraction, precision)
    policy.save(out)
    if as_json:
        emit({"policy": str(out), "predicted_latency_ms": policy.predicted_latency_ms,
              "latency_kind": f"predicted by a {table.kind} table"})
    else:
        print(f"{out}: predicted {policy.predicted_latency_ms:.4f} ms ({table.kind} table, not a measurement)")


@app.command("export")
def export_cmd(
    model: str = typer.Option(..., "--model", "-m", help=MODEL_HELP),
    model_args: list[str] = model_arg_option(),
    input_shape: Optional[str] = input_shape_option(),
    mean: Optional[str] = norm_option("--mean"),
    std: Optional[str] = norm_option("--std"),
    weights: Path = typer.Option(..., "--weights", "-w", help="Checkpoint of the uncompressed model."),
    data: Path = typer.Option(..., "--data", "-d", help="Dataset root; only its train split is used."),
    target: str = typer.Option(..., "--target", "-t", help="Target name or .toml path."),
    policy_path: Path = typer.Option(..., "--policy", "-p", help="Policy JSON (from `hirelc plan` or a search)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (model.onnx, baseline_fp32.onnx, manifest)."),
    finetune_epochs: str = finetune_epochs_option(),
    finetune_images: int = typer.Option(10_000, "--finetune-images", min=1, help="Training images used."),
    finetune_minutes: Optional[float] = finetune_minutes_option(),
    qat: bool = qat_option(),
    lr: float = typer.Option(0.01, "--lr", help="Fine-tuning learning rate (cosine schedule)."),
    criterion: str = typer.Option("fisher", "--criterion", help="Channel importance: fisher or l1."),
    table_path: Optional[Path] = typer.Option(None, "--table", help="Latency table (default: the stored one)."),
    sparse: Optional[str] = typer.Option(None, "--sparse-2-4", help="TensorRT targets: give the convolutions of "
                                         "these blocks ('all' or names like layer1.0,layer2.1) 2:4 structured "
                                         "sparsity (magnitude, held through fine-tuning)."),
    seed: int = typer.Option(0, "--seed"),
    device: str = device_option(), loading: str = loading_option(), preprocess: str = preprocess_option(),
    resize: Optional[int] = resize_option(), workers: Optional[int] = workers_option(),
    skip_bad: bool = skip_bad_option(),
    as_json: bool = json_option(),
):
    """Apply a policy for real (channels removed, INT8/FP16 kernels), fine-tune by distillation and export.

    \b
    Example:
      hirelc export --model resnet56 --weights resnet56.th --data ../shared/datasets/cifar10
          --target cpu-ort-1t --policy policy.json --out artifacts/r56 --finetune-epochs 1
      hirelc export ... --target trt-h100-b1 --sparse-2-4 all
          (TensorRT: model.onnx with explicit Q/DQ and FP16 blocks; with tensorrt and a GPU also model.engine,
          its timing cache and the per-layer report, checked against the policy)
    """
    from .jobs.export import export

    with reporter_bars() as reporter:
        manifest = export(model_ref(model, model_args, input_shape, mean, std), weights, data, target, policy_path,
                          out, finetune_epochs=finetune_epochs, finetune_minutes=finetune_minutes, qat=qat,
                          finetune_images=finetune_images, lr=lr, criterion=criterion, table=table_path,
                          sparse_2_4=sparse, seed=seed, reporter=reporter,
                          data_options=DataOptions(device, loading, preprocess, resize, workers, skip_bad))
    checks = manifest.checks
    if as_json:
        emit({"artifact": str(out / MODEL_NAME), "manifest": str(out / MANIFEST_NAME),
              "backend": manifest.backend, "engine": manifest.engine,
              "int8_blocks": sorted(name for name, kernels in manifest.quantized_blocks.items() if kernels),
              "predicted_latency_ms": manifest.predicted_latency_ms, "latency_kind": manifest.latency_kind,
              "files": manifest.files, "checks": checks})
        return
    if manifest.engine:
        print_engine_export(out, manifest)
        return
    print(f"{out / MODEL_NAME}: {sum(1 for v in manifest.quantized_blocks.values() if v)} INT8 blocks running "
          f"quantized kernels; predicted {manifest.predicted_latency_ms} ms ({manifest.latency_kind} table); "
          f"top-1 agreement with PyTorch {checks['final_top1_agreement_with_torch']:.3f} on "
          f"{checks['check_images']} held-out images")


@app.command("bench")
def bench_cmd(
    artifact: Path = typer.Argument(..., help="Exported model (.onnx, or a TensorRT .engine) to measure."),
    target: str = typer.Option(..., "--target", "-t", help="Target name or .toml path."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Dataset root: top-1 on its test split."),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="Model to compare against (interleaved)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Use only the first N test images per class."),
    out: Optional[Path] = typer.Option(None, "--out", help="Result JSON (default: beside the artifact)."),
    loading: str = loading_option(), preprocess: str = preprocess_option(), resize: Optional[int] = resize_option(),
    workers: Optional[int] = workers_option(), skip_bad: bool = skip_bad_option(),
    as_json: bool = json_option(),
):
    """Measure an exported engine: latency (and speedup over --baseline), top-1 through the engine, size.

    \b
    Example:
      hirelc bench artifacts/r56/model.onnx --target cpu-ort-1t --data ../shared/datasets/cifar10
          --baseline artifacts/r56/baseline_fp32.onnx
      hirelc bench artifacts/r56/model.engine --target trt-h100-b1 --baseline artifacts/r56/baseline_fp32.engine
          (TensorRT engines on the GPU: latency with CUDA events)
    """
    from .jobs.bench import bench

    with reporter_bars() as reporter:
        result = bench(artifact, target, data=data, baseline=baseline, limit=limit, out=out, reporter=reporter,
                       data_options=DataOptions(loading=loading, preprocess=preprocess, resize=resize,
                                                workers=workers, skip_bad_images=skip_bad))
    if as_json:
        emit(result.to_dict())
        return
    table = Table(title=f"{artifact} on {result.target} (measured: {result.measured_with})")
    for col in ("", "latency ms (median)", "spread ms (IQR)", "size MB", "top-1"):
        table.add_column(col, justify="right")
    top1 = f"{100 * result.top1:.2f}% ({result.top1_images})" if result.top1 is not None else "-"
    lat = result.latency_ms
    table.add_row("artifact", f"{lat['median_ms']:.4f}", f"{lat['q3_ms'] - lat['q1_ms']:.4f}",
                  f"{result.file_bytes / 1e6:.2f}", top1)
    if result.baseline_latency_ms:
        b = result.baseline_latency_ms
        table.add_row("baseline", f"{b['median_ms']:.4f}", f"{b['q3_ms'] - b['q1_ms']:.4f}",
                      f"{result.baseline_file_bytes / 1e6:.2f}", "")
    Console().print(table)
    if result.speedup is not None:
        Console().print(f"speedup over baseline: {result.speedup:.2f}x   result: "
                        f"{out or Path(artifact).with_suffix('.bench.json')}")


@app.command("report")
def report_cmd(run_dir: Path = typer.Argument(..., help="A run directory written by compress or profile."),
               as_json: bool = json_option()):
    """Rebuild RUN_DIR/report.html from the run's records (also for an unfinished or crashed run).

    Example: hirelc report runs/20261123-101500-compress-resnet56-cpu-ort-1t
    """
    from .report import write_report

    report = write_report(run_dir)
    if as_json:
        emit({"report": str(report)})
    else:
        print(report)


app.command("compress")(compress_cmd)
app.command("models")(models_cmd)
app.command("inspect")(inspect_cmd)


def main() -> None:
    """Console entry point: runs the app and turns HirelcError into one line and exit code 2."""
    try:
        app(standalone_mode=False)
    except HirelcError as exc:
        if state["debug"]:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:
        # Usage errors and explicit exits arrive here in non-standalone mode. They are recognised by their
        # attributes because typer >= 0.20 vendors click (typer._click) and older versions use click itself.
        code = getattr(exc, "exit_code", None)
        if code is None:
            raise
        if hasattr(exc, "show"):
            exc.show()
        sys.exit(code)


if __name__ == "__main__":
    main()
