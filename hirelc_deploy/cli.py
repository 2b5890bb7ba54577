"""The ``hirelc`` command line: a thin layer that parses flags and calls the library."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .errors import HirelcError, InputError
from .latency import (
    default_table_path,
    load_table,
    profile,
    profile_steps,
    validate,
    validate_steps,
)
from .models import MODELS, get_model_spec
from .runs import atomic_write_json
from .settings import tables_dir
from .targets import available_targets, current_fingerprint, load_target

WORKFLOW = """Make trained CNNs fast on real hardware, with every latency measured on the device.

\b
Workflow (data flows one way: profile -> table -> search -> policy -> export -> bench):
  The main job, in one command (every stage below, with a run directory):
  hirelc compress --model resnet56 --weights W.th --data ../shared/datasets/cifar10 \
      --target cpu-ort-1t --latency-budget 0.5x --strategy hirelc --evals 100
     Search a per-block width/precision policy under the budget (predicted by the
     table), apply it for real, fine-tune, export and re-measure the engine.

  The stages one by one:
  1. hirelc profile --model resnet56 --target cpu-ort-1t --validate 8
     Measure the block latency table of a model on this device and check
     that it predicts real exported engines (predicted vs measured latency).
  2. hirelc sensitivity --model resnet56 --weights W.th --data ../shared/datasets/cifar10
     Fisher sensitivity per block on held-out training images.
  3. hirelc plan --table latency_tables/resnet56__cpu-ort-1t.json --fraction 0.5 --precision int8
     Write a policy (inner width and precision per block) with its predicted latency.
  4. hirelc export --model resnet56 --weights W.th --data D --target cpu-ort-1t --policy policy.json --out DIR
     Prune for real, recalibrate BatchNorm, distil, export ONNX (INT8 blocks quantized) + manifest.
  5. hirelc bench DIR/model.onnx --target cpu-ort-1t --data D --baseline DIR/baseline_fp32.onnx
     Measured latency (interleaved with the baseline), top-1 of the engine on the test split, size.
  hirelc models / hirelc targets list what is built in.
"""

app = typer.Typer(help=WORKFLOW, no_args_is_help=True, add_completion=False, rich_markup_mode=None)
console = Console(stderr=True)
log = logging.getLogger("hirelc")
_state = {"debug": False, "quiet": False}


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
          quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or tables, only results.")):
    _state.update(debug=debug, quiet=quiet)
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


@contextmanager
def _progress(total: int, label: str) -> Iterator:
    """A rich progress bar whose callback takes (phase, units done)."""
    if _state["quiet"]:
        yield lambda *_: None
        return
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(label, total=total)
        yield lambda phase, n=1: bar.update(task, advance=n, description=f"{label}: {phase}")


def _parse_fractions(text: Optional[str]) -> Optional[list[float]]:
    if not text:
        return None
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--fractions: expected comma-separated numbers, got '{text}'") from None
    if not values or any(not 0 <= v <= 1 for v in values):
        raise InputError(f"--fractions: every fraction must be in [0, 1] (0 = block removed), got '{text}'")
    return values


def _default_run_dir(kind: str, model: str, target: str) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path.cwd() / "runs" / f"{stamp}-{kind}-{model}-{target}"


def _print_validation(report) -> None:
    table = Table(title=f"Predicted vs measured: {report.model} on {report.target}")
    for col in ("config", "precisions", "predicted ms", "measured ms", "spread ms", "abs err %"):
        table.add_column(col, justify="right" if "ms" in col or "%" in col else "left")
    for r in report.rows:
        mix = "/".join(f"{p}:{r.precisions.count(p)}" for p in sorted(set(r.precisions)))
        table.add_row(r.label, mix, f"{r.predicted_ms:.4f}", f"{r.measured_ms:.4f}", f"{r.measured_spread_ms:.4f}",
                      f"{r.abs_pct_error:.2f}")
    Console().print(table)
    for group, s in report.summary().items():
        if s["count"]:
            Console().print(f"{group:>14}: median abs error {s['median_ape']:.2f}%  max {s['max_ape']:.2f}%  "
                            f"({s['count']} configs)")


@app.command("profile")
def profile_cmd(
    model: str = typer.Option(..., "--model", "-m", help="Built-in model name (see `hirelc models`)."),
    target: str = typer.Option(..., "--target", "-t", help="Target name in hw_profiles/ or a .toml path."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where to write the table "
                                       "(default latency_tables/MODEL__TARGET.json)."),
    validate_n: int = typer.Option(0, "--validate", min=0, help="Also export N random configurations and "
                                   "compare predicted with measured latency."),
    table_path: Optional[Path] = typer.Option(None, "--table", help="Validate this existing table instead of "
                                              "measuring a new one."),
    fractions: Optional[str] = typer.Option(None, "--fractions", help="Width fractions to profile, e.g. "
                                            "'0.25,0.5,1' (default: the target's grid)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random validation configurations."),
    force: bool = typer.Option(False, "--force", help="Use a --table measured on another device anyway."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Run directory (default runs/STAMP-profile-...)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result summary as JSON on stdout."),
):
    """Measure a block latency table on this device (and validate it against real exported engines).

    Example: hirelc profile --model resnet56 --target cpu-ort-1t --validate 8
    """
    get_model_spec(model)
    tgt = load_target(target)
    grid = _parse_fractions(fractions)
    run = run_dir or _default_run_dir("profile", model, tgt.name)
    run.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run / "config.json", {
        "command": "profile", "model": model, "target": tgt.name, "target_file": tgt.path, "fractions": grid,
        "validate": validate_n, "seed": seed, "table": str(table_path) if table_path else None,
        "fingerprint": current_fingerprint(tgt).to_dict(),
    })
    if table_path:
        table = load_table(table_path)
        table.check_device(current_fingerprint(tgt), force=force, source=str(table_path))
        if table.model != model:
            raise InputError(f"--table: {table_path} is for model {table.model}, not {model}")
    else:
        with _progress(profile_steps(model, tgt, grid), f"profiling {model} on {tgt.name}") as note:
            table = profile(model, tgt, grid, note)
        destination = out or default_table_path(tables_dir(), model, tgt.name)
        table.save(destination)
        if not _state["quiet"]:
            console.print(f"table written to {destination}")
    table.save(run / "latency_table.json")
    summary = {"table": str(out or table_path or default_table_path(tables_dir(), model, tgt.name)),
               "run_dir": str(run), "fixed_ms": table.fixed_ms}
    if validate_n:
        with _progress(validate_steps(tgt, validate_n), f"validating {validate_n + 2} configs") as note:
            report = validate(table, tgt, validate_n, seed, note)
        atomic_write_json(run / "validation.json", report.to_dict())
        summary["validation"] = report.summary()
        if not _state["quiet"] and not as_json:
            _print_validation(report)
    if as_json:
        print(json.dumps(summary, indent=2))
    elif not _state["quiet"]:
        console.print(f"run directory: {run}")


def _table_fingerprint(table_path: Optional[Path], model: str, target) -> dict:
    """Fingerprint of the table behind a policy (checked against this device), {} when there is none."""
    path = table_path or default_table_path(tables_dir(), model, target.name)
    if table_path is None and not Path(path).exists():
        return {}
    table = load_table(path)
    table.check_device(current_fingerprint(target), source=str(path))
    return table.fingerprint


@app.command("sensitivity")
def sensitivity_cmd(
    model: str = typer.Option(..., "--model", "-m", help="Built-in model name."),
    weights: Path = typer.Option(..., "--weights", "-w", help="Checkpoint (.th/.pt, loaded weights-only)."),
    data: Path = typer.Option(..., "--data", "-d", help="Dataset root (ImageFolder with train/ or CIFAR batches)."),
    samples: int = typer.Option(256, "--samples", min=1, help="Held-out training images for the Fisher."),
    seed: int = typer.Option(0, "--seed"),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the sensitivity JSON here."),
):
    """Fisher-information sensitivity per block (held-out part of the train split, never the test split).

    Example: hirelc sensitivity --model resnet56 --weights resnet56.th --data ../shared/datasets/cifar10
    """
    from .pipeline import DataConfig, load_model, prepare_data, sensitivity_of

    spec = get_model_spec(model)
    config = DataConfig(seed=seed, train_images=1, heldout_images=samples, fisher_images=samples)
    teacher = load_model(spec, weights)
    data = prepare_data(spec, data, config)
    with _progress(samples, "Fisher") as note:
        sens = sensitivity_of(teacher, spec, data, config, on_sample=lambda: note("per-sample gradients", 1))
    if out:
        sens.save(out)
    if not _state["quiet"]:
        table = Table(title=f"Fisher sensitivity of {model} ({sens.samples} held-out images)")
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
):
    """Write a uniform policy (same width fraction and precision everywhere) with its predicted latency.

    Example: hirelc plan --table latency_tables/resnet56__cpu-ort-1t.json --fraction 0.5 --precision int8
    """
    from .search import nearest_widths, plan_policy

    table = load_table(table_path)
    if precision not in table.precisions:
        raise InputError(f"--precision: '{precision}' not in the table ({', '.join(table.precisions)})")
    policy = plan_policy(table, nearest_widths(table, fraction), [precision] * len(table.blocks),
                         planned=f"uniform {fraction} {precision}")
    policy.save(out)
    print(f"{out}: predicted {policy.predicted_latency_ms:.4f} ms ({table.kind} table, not a measurement)")


@app.command("export")
def export_cmd(
    model: str = typer.Option(..., "--model", "-m", help="Built-in model name."),
    weights: Path = typer.Option(..., "--weights", "-w", help="Checkpoint of the uncompressed model."),
    data: Path = typer.Option(..., "--data", "-d", help="Dataset root; only its train split is used."),
    target: str = typer.Option(..., "--target", "-t", help="Target name or .toml path."),
    policy_path: Path = typer.Option(..., "--policy", "-p", help="Policy JSON (from `hirelc plan` or a search)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (model.onnx, baseline_fp32.onnx, manifest)."),
    finetune_epochs: float = typer.Option(1.0, "--finetune-epochs", min=0.0, help="Distillation epochs (0 = none)."),
    finetune_images: int = typer.Option(10_000, "--finetune-images", min=1, help="Training images used."),
    lr: float = typer.Option(0.01, "--lr", help="Fine-tuning learning rate (cosine schedule)."),
    criterion: str = typer.Option("fisher", "--criterion", help="Channel importance: fisher or l1."),
    table_path: Optional[Path] = typer.Option(None, "--table", help="Latency table (default latency_tables/...)."),
    seed: int = typer.Option(0, "--seed"),
):
    """Apply a policy for real (channels removed, INT8 kernels), fine-tune by distillation and export.

    Example: hirelc export --model resnet56 --weights resnet56.th --data ../shared/datasets/cifar10
    --target cpu-ort-1t --policy policy.json --out artifacts/r56 --finetune-epochs 1
    """
    from .apply import DistillConfig
    from .pipeline import DataConfig, check_policy, export_policy, load_model, prepare_data, sensitivity_of
    from .policy import load_policy

    if criterion not in ("fisher", "l1"):
        raise InputError(f"--criterion: expected fisher or l1, got '{criterion}'")
    spec = get_model_spec(model)
    tgt = load_target(target)
    policy = load_policy(policy_path)
    check_policy(spec, policy, tgt)
    fingerprint = _table_fingerprint(table_path, model, tgt)
    torch_seed(seed)
    teacher = load_model(spec, weights)
    config = DataConfig(seed=seed, train_images=finetune_images)
    with _progress(finetune_images + config.heldout_images, "decoding images") as note:
        prepared = prepare_data(spec, data, config, on_image=lambda: note("decoding", 1))
    sens = None
    if criterion == "fisher":
        with _progress(config.fisher_images, "Fisher") as note:
            sens = sensitivity_of(teacher, spec, prepared, config, lambda: note("per-sample gradients", 1))
    steps = max(1, round(finetune_epochs * (len(prepared.train) // config.batch_size)))
    with _progress(steps, "fine-tuning") as note:
        _, manifest = export_policy(teacher, spec, policy, tgt, prepared, config,
                                    DistillConfig(epochs=finetune_epochs, lr=lr), out, fingerprint, sens,
                                    criterion, note)
    if sens is not None:
        sens.save(out / "sensitivity.json")
    policy.save(out / "policy.json")
    checks = manifest.checks
    print(f"{out / 'model.onnx'}: {sum(1 for v in manifest.quantized_blocks.values() if v)} INT8 blocks running "
          f"quantized kernels; predicted {manifest.predicted_latency_ms} ms ({manifest.latency_kind} table); "
          f"top-1 agreement with PyTorch {checks['final_top1_agreement_with_torch']:.3f} on "
          f"{checks['check_images']} held-out images")


@app.command("bench")
def bench_cmd(
    artifact: Path = typer.Argument(..., help="Exported ONNX model to measure."),
    target: str = typer.Option(..., "--target", "-t", help="Target name or .toml path."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Dataset root: top-1 on its test split."),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="ONNX model to compare against (interleaved)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Use only the first N test images per class."),
    out: Optional[Path] = typer.Option(None, "--out", help="Result JSON (default: beside the artifact)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
):
    """Measure an exported engine: latency (and speedup over --baseline), top-1 through the engine, size.

    Example: hirelc bench artifacts/r56/model.onnx --target cpu-ort-1t --data ../shared/datasets/cifar10
    --baseline artifacts/r56/baseline_fp32.onnx
    """
    from .bench import bench
    from .data import Normalize, load_images, open_dataset

    tgt = load_target(target)
    images = normalize = None
    if data is not None:
        dataset = open_dataset(data, "test", limit_per_class=limit)
        with _progress(len(dataset), "decoding test images") as note:
            images = load_images(dataset, on_image=lambda: note("decoding", 1))
        spec = _spec_for_artifact(artifact)
        normalize = Normalize(spec.mean, spec.std) if spec else Normalize((0.485, 0.456, 0.406),
                                                                          (0.229, 0.224, 0.225))
    with _progress(tgt.measure.bursts * (2 if baseline else 1), "benchmarking") as note:
        result = bench(artifact, tgt, images, normalize, baseline, on_progress=lambda phase: note(phase, 1))
    destination = out or Path(artifact).with_suffix(".bench.json")
    result.save(destination)
    if as_json:
        print(json.dumps(result.__dict__, indent=2))
        return
    table = Table(title=f"{artifact} on {tgt.name} (measured)")
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
        Console().print(f"speedup over baseline: {result.speedup:.2f}x   result: {destination}")


def _spec_for_artifact(artifact: Path):
    """The model spec named by the manifest beside an artifact, if there is one."""
    from .export import load_manifest

    try:
        return get_model_spec(load_manifest(Path(artifact).parent).model)
    except HirelcError:
        return None


def torch_seed(seed: int) -> None:
    """Seed torch and numpy so a run repeats."""
    import numpy as np
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed)


class _RichReporter:
    """Progress of ``compress``: one bar per phase (a spinner where the length is unknown)."""

    def __init__(self, bar: Progress):
        self.bar, self.task = bar, None

    def phase(self, name: str, total: int | None = None) -> None:
        if self.task is not None:
            self.bar.update(self.task, completed=self.bar.tasks[self.task].total or 1, total=
                            self.bar.tasks[self.task].total or 1)
        self.task = self.bar.add_task(name, total=total)

    def advance(self, steps: int = 1) -> None:
        if self.task is not None:
            self.bar.advance(self.task, steps)

    def note(self, message: str) -> None:
        self.bar.console.print(message)


def _print_summary(summary: dict) -> None:
    table = Table(title=f"{summary['model']} on {summary['target']}: {summary['strategy']} search, "
                        f"budget {summary['budget']}")
    table.add_column("")
    table.add_column("uncompressed", justify="right")
    table.add_column("compressed", justify="right")
    table.add_row("latency ms (measured)", f"{summary['uncompressed_ms']:.4f}",
                  f"{summary['measured_ms']:.4f} ({min(summary['measured_rounds_ms']):.4f}-"
                  f"{max(summary['measured_rounds_ms']):.4f} over {len(summary['measured_rounds_ms'])} processes)")
    table.add_row("latency ms (predicted, calibrated table)", "", f"{summary['predicted_ms']:.4f}")
    table.add_row("budget ms", "", f"{summary['budget_ms']:.4f}")
    table.add_row("speedup (measured)", "", f"{summary['speedup']:.2f}x")
    table.add_row(f"top-1 ({summary['test_images']} test images)", f"{100 * summary['top1_before']:.2f}%",
                  f"{100 * summary['top1_after']:.2f}%")
    table.add_row("size MB", f"{summary['bytes_before'] / 1e6:.2f}", f"{summary['bytes_after'] / 1e6:.2f}")
    Console().print(table)
    Console().print(f"measured {summary['measured_ms']:.4f} ms against a budget of {summary['budget_ms']:.4f} ms: "
                    f"{summary['verdict']}")


@app.command("compress")
def compress_cmd(
    model: str = typer.Option(..., "--model", "-m", help="Built-in model name (see `hirelc models`)."),
    weights: str = typer.Option(..., "--weights", "-w", help="Checkpoint path, or a public checkpoint name "
                                "(resnet20-cifar10, resnet56-cifar10; fetched once into $HIRELC_CACHE)."),
    data: Path = typer.Option(..., "--data", "-d", help="Dataset root with train/ and test/ (ImageFolder or "
                              "CIFAR batches). The search scores on held-out train images; test is for the end."),
    target: str = typer.Option(..., "--target", "-t", help="Target name in hw_profiles/ or a .toml path."),
    latency_budget: str = typer.Option(..., "--latency-budget", "-b", help="Absolute (0.6ms, 600us) or a "
                                       "fraction of the uncompressed model's measured latency (0.5x)."),
    strategy: str = typer.Option("hirelc", "--strategy", "-s", help="hirelc, amc, rl-pruner, two-stage, "
                                 "fisher-greedy, uniform or random."),
    evals: int = typer.Option(100, "--evals", help="Real candidate evaluations the search may spend."),
    finetune_epochs: float = typer.Option(1.0, "--finetune-epochs", help="Distillation epochs (0 = none)."),
    finetune_images: int = typer.Option(10_000, "--finetune-images", help="Training images for fine-tuning."),
    heldout_images: int = typer.Option(1_000, "--heldout-images", help="Held-out train images that score "
                                       "candidates."),
    test_per_class: Optional[int] = typer.Option(None, "--test-per-class", help="Test images per class for the "
                                                 "final top-1 (default: all)."),
    finalists: int = typer.Option(3, "--finalists", help="Best policies timed for real before fine-tuning."),
    seed: int = typer.Option(0, "--seed"),
    table_path: Optional[Path] = typer.Option(None, "--table", help="Latency table to use (default: the stored "
                                              "one if it was measured here, else profile now)."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Run directory (default runs/STAMP-compress-...)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
):
    """Compress a trained model for a latency budget: search, apply for real, fine-tune, export, re-measure.

    Example: hirelc compress --model resnet56 --weights ../shared/models/cifar10-resnet/resnet56-4bfd9763.th
    --data ../shared/datasets/cifar10 --target cpu-ort-1t --latency-budget 0.5x --evals 100
    """
    from .compress import CompressConfig, SilentReporter, compress

    config = CompressConfig(model, weights, str(data), target, latency_budget, strategy, evals, finetune_epochs,
                            finetune_images, heldout_images, test_per_class, finalists, seed,
                            str(table_path) if table_path else None)
    config.check()
    run = run_dir or _default_run_dir("compress", model, Path(target).stem)
    if _state["quiet"]:
        summary = compress(config, run, SilentReporter())
    else:
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
        with Progress(*columns, console=console) as bar:
            summary = compress(config, run, _RichReporter(bar))
    if as_json:
        print(json.dumps({**summary, "run_dir": str(run)}, indent=2))
        return
    if not _state["quiet"]:
        _print_summary(summary)
        console.print(f"run directory: {run}")
    else:
        print(f"{summary['measured_ms']:.4f} ms (budget {summary['budget_ms']:.4f} ms, {summary['verdict']}), "
              f"top-1 {100 * summary['top1_after']:.2f}%")


@app.command("models")
def models_cmd():
    """List the built-in models with their blocks and input shape."""
    for name, spec in MODELS.items():
        blocks = spec.blocks()
        print(f"{name:14s} input {'x'.join(map(str, spec.input_shape)):10s} {len(blocks):3d} blocks, "
              f"inner widths {sorted({b.full_width for b in blocks})}")


@app.command("targets")
def targets_cmd():
    """List the targets in hw_profiles/."""
    for name in available_targets():
        t = load_target(name)
        print(f"{name:14s} {t.backend}/{t.execution_provider} precisions {','.join(t.precisions)} "
              f"threads {t.threads} batch {t.batch_size}  {t.description}")


def main() -> None:
    """Console entry point: runs the app and turns HirelcError into one line and exit code 2."""
    try:
        app(standalone_mode=False)
    except HirelcError as exc:
        if _state["debug"]:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
