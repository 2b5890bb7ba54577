"""``hirelc compress``: the main job in one command (search, apply for real, fine-tune, export, re-measure), and
``--resume`` of a run after a crash."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .cli_common import (MODEL_HELP, console, device_option, emit, executor_option, finetune_epochs_option,
                         finetune_minutes_option, input_shape_option, json_option, loading_option, model_arg_option,
                         model_fields, norm_option, preprocess_option, qat_option, ray_address_option, reporter_bars,
                         resize_option, skip_bad_option, state, workers_option)
from .cli_output import print_summary
from .errors import InputError
from .records import DataOptions


def compress_cmd(
    ctx: typer.Context,
    model: Optional[str] = typer.Option(None, "--model", "-m", help=MODEL_HELP + " Required unless --resume."),
    model_args: list[str] = model_arg_option(),
    input_shape: Optional[str] = input_shape_option(),
    mean: Optional[str] = norm_option("--mean"),
    std: Optional[str] = norm_option("--std"),
    weights: Optional[str] = typer.Option(None, "--weights", "-w", help="Checkpoint path, or a public checkpoint "
                                          "name (resnet20-cifar10, resnet56-cifar10; fetched once into "
                                          "$HIRELC_CACHE). Required unless --resume."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Dataset root with train/ and test/ or val/ "
                                        "(ImageFolder) or CIFAR batches. The search scores on held-out train images; "
                                        "test is for the end. Required unless --resume."),
    target: Optional[str] = typer.Option(None, "--target", "-t", help="Target name (see `hirelc targets`) or a "
                                         ".toml path. Required unless --resume."),
    latency_budget: Optional[str] = typer.Option(None, "--latency-budget", "-b", help="Absolute (0.6ms, 600us) or a "
                                                 "fraction of the uncompressed model's measured latency (0.5x). "
                                                 "Required unless --resume."),
    strategy: str = typer.Option("hirelc", "--strategy", "-s", help="hirelc, amc, rl-pruner, two-stage, "
                                 "fisher-greedy, uniform or random."),
    evals: int = typer.Option(100, "--evals", help="Real candidate evaluations the search may spend."),
    finetune_epochs: str = finetune_epochs_option(),
    finetune_images: int = typer.Option(10_000, "--finetune-images", help="Training images for fine-tuning."),
    finetune_minutes: Optional[float] = finetune_minutes_option(),
    qat: bool = qat_option(),
    heldout_images: int = typer.Option(1_000, "--heldout-images", help="Held-out train images that score "
                                       "candidates."),
    test_per_class: Optional[int] = typer.Option(None, "--test-per-class", help="Test images per class for the "
                                                 "final top-1 (default: all)."),
    finalists: int = typer.Option(3, "--finalists", help="Best policies timed for real before fine-tuning, per "
                                  "round of the closed loop on the budget (up to 4 rounds, the table corrected by "
                                  "what was measured, until one meets the budget on the device)."),
    finalist_images: int = typer.Option(5_000, "--finalist-images", help="When several finalists meet the budget "
                                        "on the device, each is distilled on this many training images and the "
                                        "best after distillation is exported (0: the best by the proxy)."),
    seed: int = typer.Option(0, "--seed"),
    device: str = device_option(), loading: str = loading_option(), preprocess: str = preprocess_option(),
    resize: Optional[int] = resize_option(), workers: Optional[int] = workers_option(),
    skip_bad: bool = skip_bad_option(),
    table_path: Optional[Path] = typer.Option(None, "--table", help="Latency table to use (default: the stored "
                                              "one if it was measured here, else profile now)."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Run directory (default runs/STAMP-compress-...)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this directory after a crash "
                                          "or kill: finished stages and evaluations are reused, the search ends "
                                          "where an uninterrupted run would. Other flags may be left out; any "
                                          "given must match the run's."),
    check_targets: Optional[str] = typer.Option(None, "--check-targets", help="Other targets, comma-separated: the "
                                                "chosen policy is also exported for each and timed on its device "
                                                "against the same budget (a verdict each, in checks.json and the "
                                                "report)."),
    executor: str = executor_option(), ray_address: Optional[str] = ray_address_option(),
    eval_gpus: float = typer.Option(0.0, "--eval-gpus", min=0.0, help="With --executor ray: GPUs each evaluation "
                                    "task asks for (0.25 puts four on one GPU)."),
    as_json: bool = json_option(),
):
    """Compress a trained model for a latency budget: search, apply for real, fine-tune, export, re-measure.

    The run directory gets every record (config, table, sensitivity, candidates.jsonl, policy, artifacts with
    checksums, bench.json, summary.json) and report.html.

    \b
    Example:
      hirelc compress --model resnet56 --weights ../shared/models/cifar10-resnet/resnet56-4bfd9763.th \\
          --data ../shared/datasets/cifar10 --target cpu-ort-1t --latency-budget 0.5x --evals 100 --run-dir runs/r56
      hirelc compress --resume runs/r56      # after a crash or kill -9
      hirelc compress ... --executor ray --ray-address auto   # evaluations on a Ray cluster
    """
    from .apply import parse_epochs
    from .jobs import compress as library
    from .search.executors import make_executor

    options = {"strategy": strategy, "evals": evals, "finetune_epochs": parse_epochs(finetune_epochs),
               "finetune_images": finetune_images, "finetune_minutes": finetune_minutes, "qat": qat,
               "heldout_images": heldout_images, "test_per_class": test_per_class,
               "finalists": finalists, "finalist_images": finalist_images, "seed": seed, "table": table_path,
               "data_options": DataOptions(device, loading, preprocess, resize, workers, skip_bad),
               "check_targets": [name.strip() for name in (check_targets or "").split(",") if name.strip()],
               **model_fields(model_args, input_shape, mean, std)}
    required = {"model": model, "weights": weights, "data": data, "target": target, "latency_budget": latency_budget}
    runner = make_executor(executor, ray_address, eval_gpus)
    with reporter_bars() as reporter:
        if resume:
            if run_dir and run_dir.resolve() != resume.resolve():
                raise InputError(f"--run-dir {run_dir}: a resumed run stays in its directory ({resume})")
            given = {name: value for name, value in {**required, **options}.items()
                     if any(_given(ctx, param) for param in _PARAM_NAMES.get(name, (name,)))}
            result = library.resume(resume, reporter, executor=runner, **given)
        else:
            missing = ["--" + name.replace("_", "-") for name, value in required.items() if value is None]
            if missing:
                raise InputError(f"{', '.join(missing)}: required (unless --resume RUN_DIR)")
            result = library.compress(**required, run_dir=run_dir, reporter=reporter, executor=runner,
                                      **options)
    summary = result.summary
    checks = result.checks.to_dict()["checks"] if result.checks else []
    if as_json:
        emit({**summary.to_dict(), "checks": checks, "run_dir": str(result.run_dir), "report": str(result.report)})
    elif state["quiet"]:
        latency = summary.measured_ms if summary.measured else summary.predicted_ms
        print(f"{latency:.4f} ms (budget {summary.budget_ms:.4f} ms, {summary.verdict}), "
              f"top-1 {100 * summary.top1_after:.2f}%")
    else:
        print_summary(summary)
        for check in checks:
            latency = check["latency"]
            console.print(f"on {check['target']} (batch {check['batch_size']}): {latency['engine_ms']:.4f} ms against "
                          f"{check['budget_ms']:.4f} ms, {latency['speedup']:.2f}x: {check['verdict']}")
        console.print(f"run directory: {result.run_dir}\nreport: {result.report}")


# CompressConfig field -> the CLI parameters that set it, where the names differ.
_PARAM_NAMES = {"table": ("table_path",),
                "data_options": ("device", "loading", "preprocess", "resize", "workers", "skip_bad")}


def _given(ctx: typer.Context, param: str) -> bool:
    """Whether the user set ``param`` on the command line (not left at its default). Compared by name: the
    enum lives in click or in typer's vendored copy of it, depending on typer's version."""
    source = ctx.get_parameter_source(param)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")
