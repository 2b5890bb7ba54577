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
from .settings import REPO_ROOT, tables_dir
from .targets import available_targets, current_fingerprint, load_target

WORKFLOW = """Make trained CNNs fast on real hardware, with every latency measured on the device.

\b
Workflow (data flows one way: profile -> table -> search -> policy -> export -> bench):
  1. hirelc profile --model resnet56 --target cpu-ort-1t --validate 8
     Measure the block latency table of a model on this device and check
     that it predicts real exported engines (predicted vs measured latency).
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
    if not values or any(not 0 < v <= 1 for v in values):
        raise InputError(f"--fractions: every fraction must be in (0, 1], got '{text}'")
    return values


def _default_run_dir(kind: str, model: str, target: str) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return REPO_ROOT / "runs" / f"{stamp}-{kind}-{model}-{target}"


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
        console.print(f"table written to {destination}") if not _state["quiet"] else None
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
