"""What every ``hirelc`` command shares: the ``--json`` flag, JSON output, progress bars on stderr, and the flags
that name a model."""

from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Iterator

import typer
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.text import Text

from .errors import InputError
from .records import ModelRef

console = Console(stderr=True)  # progress, tables and notes: stdout stays clean for --json
state = {"debug": False, "quiet": False}


def json_option():
    """The ``--json`` flag every command takes."""
    return typer.Option(False, "--json", help="Print the result as JSON on stdout (progress and tables go to "
                        "stderr or are left out), for scripts.")


def emit(obj) -> None:
    """The machine-readable result of a command on stdout."""
    print(json.dumps(obj, indent=2, default=str))


class RichReporter:
    """A ``progress.Reporter`` drawing one rich bar per phase (a spinner where the length is unknown)."""

    def __init__(self, bar: Progress):
        self.bar, self.task, self.name = bar, None, ""

    def phase(self, name: str, total: int | None = None) -> None:
        if self.task is not None:
            done = self.bar.tasks[self.task].total or 1
            self.bar.update(self.task, completed=done, total=done)
        self.task, self.name = self.bar.add_task(name, total=total), name

    def advance(self, steps: int = 1, detail: str | None = None) -> None:
        if self.task is not None:
            self.bar.update(self.task, advance=steps,
                            description=f"{self.name}: {detail}" if detail else self.name)

    def note(self, message: str) -> None:
        if not state["quiet"]:
            self.bar.console.print(message)


class RateColumn(ProgressColumn):
    """Steps per second of the phase (images/s in the phases that count images)."""

    def render(self, task) -> Text:
        return Text(f"{task.speed:,.1f}/s" if task.speed else "", style="progress.data.speed")


def progress_bars() -> Progress:
    """The progress display every command uses (on stderr, so --json output stays clean): steps done, rate,
    elapsed time and ETA."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console,
                    disable=state["quiet"])


@contextmanager
def reporter_bars() -> Iterator[RichReporter]:
    """Progress bars on stderr for one command (drawn unless --quiet)."""
    with progress_bars() as bar:
        yield RichReporter(bar)


def device_option():
    """``--device``: where the training-side work runs."""
    return typer.Option("auto", "--device", help="Where Fisher, candidate evaluation, BatchNorm recalibration and "
                        "fine-tuning run: auto (CUDA when present), cpu, cuda or cuda:N (mixed precision for "
                        "training on CUDA). Latency is always measured on the target.")


def executor_option():
    """``--executor``: where candidate evaluations (and, with Ray, measurements through each device's lease) run."""
    return typer.Option("local", "--executor", help="Where candidate evaluations run: local (this process) or ray "
                        "(Ray tasks; pip install 'hirelc-deploy[ray]'). A seed's result is the same with either.")


def ray_address_option():
    """``--ray-address``: the Ray cluster of ``--executor ray``."""
    return typer.Option(None, "--ray-address", help="With --executor ray: auto (the cluster this machine is in) or "
                        "ray://HOST:PORT; default a Ray instance started on this machine for the run.")


def loading_option():
    """``--data-loading``: decode into memory or stream."""
    return typer.Option("auto", "--data-loading", help="memory (decode the images used once), stream (DataLoader "
                        "workers read them from disk every pass; memory does not grow with the folder) or auto "
                        "(memory for the CIFAR recipe up to 1 GiB decoded).")


def preprocess_option():
    """``--preprocess``: the image recipe."""
    return typer.Option("auto", "--preprocess", help="cifar (resize to the input; padded random crop + flip for "
                        "training) or imagenet (shorter side to --resize, centre crop; random-resized crop + flip "
                        "for training). auto: cifar for inputs up to 64x64.")


def resize_option():
    """``--resize``: the imagenet recipe's shorter side."""
    return typer.Option(None, "--resize", min=1, help="imagenet recipe: shorter side before the centre crop "
                        "(default input / 0.875: 256 for 224).")


def workers_option():
    """``--workers``: DataLoader processes."""
    return typer.Option(None, "--workers", min=0, help="DataLoader worker processes when streaming (default one per "
                        "core, at most 8; 0 decodes in the main process).")


def skip_bad_option():
    """``--skip-bad-images``."""
    return typer.Option(False, "--skip-bad-images", help="Skip images that cannot be decoded and list them in the "
                        "result, instead of stopping at the first (named).")


def finetune_epochs_option():
    """``--finetune-epochs N|auto`` (text: ``apply.parse_epochs`` reads it, with a one-line error)."""
    return typer.Option("1", "--finetune-epochs", help="Distillation epochs (0 = none), or auto: 1 to 8, more the "
                        "more of the parameters the policy removes and the more blocks it runs in INT8.")


def finetune_minutes_option():
    """``--finetune-minutes M``: the fine-tune's wall-time cap."""
    return typer.Option(None, "--finetune-minutes", help="Cap the fine-tune's wall time: the time per step is "
                        "measured over the first steps, and the step count (with its cosine schedule) cut to fit. "
                        "Default: no cap.")


def qat_option():
    """``--qat/--no-qat``: quantization-aware fine-tuning of the INT8 blocks."""
    return typer.Option(True, "--qat/--no-qat", help="Fine-tune the INT8 blocks with ONNX Runtime's INT8 simulated "
                        "(BN-folded per-channel INT8 weights, UINT8 activations; ONNX Runtime targets). --no-qat: "
                        "plain FP32 fine-tuning.")


MODEL_HELP = ("A zoo model (see `hirelc models`), or your own: path/to/file.py:factory or package.module:factory "
              "(a callable returning an nn.Module; blocks are found automatically, see `hirelc inspect`).")


def model_arg_option():
    """``--model-arg key=value`` (repeatable): keyword arguments of a model factory."""
    return typer.Option([], "--model-arg", help="Keyword argument of your model's factory, key=value (a Python "
                        "literal, or text); repeat for several.")


def input_shape_option():
    """``--input-shape CxHxW``."""
    return typer.Option(None, "--input-shape", help="Input shape CxHxW, e.g. 3x224x224 (default: the zoo "
                        "model's, or 3x224x224 for your own).")


def norm_option(flag: str):
    """``--mean`` / ``--std``: the input normalisation, one value per channel."""
    return typer.Option(None, flag, help=f"Input normalisation {flag[2:]}, comma-separated per channel "
                        "(default: ImageNet's).")


def _floats(text: str | None, flag: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"{flag}: expected comma-separated numbers, got '{text}'") from None


def model_fields(model_args: list[str], input_shape: str | None, mean: str | None, std: str | None) -> dict:
    """The ``ModelRef`` fields (other than the model) the model flags set, parsed (``CompressConfig`` names)."""
    from .models.user_model import parse_model_args, parse_shape

    return {"model_args": parse_model_args(model_args),
            "input_shape": parse_shape(input_shape) if input_shape else None,
            "mean": _floats(mean, "--mean"), "std": _floats(std, "--std")}


def model_ref(model: str, model_args: list[str], input_shape: str | None, mean: str | None, std: str | None
              ) -> ModelRef:
    """The model the flags name."""
    fields = model_fields(model_args, input_shape, mean, std)
    return ModelRef(model, fields["model_args"], fields["input_shape"], fields["mean"], fields["std"])
