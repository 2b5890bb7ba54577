"""``hirelc profile`` as a library call, and the table every other job uses.

``profile`` measures a model's block latency table on the target's device (or, with ``predict``, builds the
roofline prediction), optionally validates it against real exported engines, and writes a run directory.
``ensure_table`` is how compress and export find their table: the stored one when it was measured here for the
same grid, else a fresh profile. A target whose backend cannot measure on this machine (TensorRT without a GPU)
plans instead: a table measured on the device elsewhere if one fits, else a roofline prediction, labelled
predicted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..errors import InputError, TableError
from ..latency.profile import Progress, measured_table, model_input_shape, profile_steps
from ..latency.roofline import predict_table
from ..latency.table import LatencyTable, default_table_path, load_table
from ..latency.validate import ValidationReport, validate, validate_steps
from ..models import ModelSpec, as_spec
from ..progress import Reporter, SilentReporter, steps_of
from ..records import ModelRef, ProfileRunConfig
from ..report import write_report
from ..runs import RunDirectory, RunFiles, default_run_dir
from ..settings import tables_dir
from ..targets import Backend, Target, backend_of, current_fingerprint, load_target


@dataclass(frozen=True)
class ProfileResult:
    """What ``profile`` made: the table, where it was stored, and the run directory with its report."""

    table: LatencyTable
    table_path: Path
    run_dir: Path
    report: Path
    validation: ValidationReport | None = None


def profile(model: str | ModelRef, target: str | Target, *, out: Path | None = None, validate_count: int = 0,
            table: Path | None = None, fractions: Sequence[float] | None = None, seed: int = 0, force: bool = False,
            predict: bool = False, run_dir: Path | None = None, reporter: Reporter | None = None,
            backend: Backend | None = None) -> ProfileResult:
    """Measure the block latency table of ``model`` (a zoo name, or a ``ModelRef`` to a factory) on ``target``
    (this machine must be its device) and store it in the tables directory (or ``out``); with
    ``validate_count`` also export that many random configurations (and two fixed ones) and compare predicted
    with measured latency. ``table`` validates an existing table instead of
    measuring one; ``predict`` builds a roofline table (labelled predicted; never replaces a measured one).
    Every run writes ``run_dir`` (default ``runs/STAMP-profile-MODEL-TARGET``) with its report. ``backend``: the
    target's backend leased through its device's actor (``devices.leased_backend``; ``jobs/fleet.py``)."""
    reporter = reporter or SilentReporter()
    spec = as_spec(model)
    tgt = target if isinstance(target, Target) else load_target(target)
    run = RunDirectory(run_dir or default_run_dir("profile", spec.key, tgt.name), create=False)
    if run.has(RunFiles.CONFIG):
        raise InputError(f"--run-dir {run.root}: holds a run already; choose another directory")
    if predict:
        if validate_count or table or fractions:
            raise InputError("--predict: cannot be combined with --validate, --table or --fractions (nothing is "
                             "measured)")
        return _predicted(spec, tgt, out, run)
    backend = backend or backend_of(tgt)
    reason = backend.unavailable()
    if reason:
        raise InputError(f"--target {tgt.name}: cannot measure on this machine: {reason}; --predict builds a "
                         "roofline table (labelled predicted) instead")
    given = _given_table(table, spec, tgt, force) if table else None
    run.create()
    ProfileRunConfig(model=spec.name, model_ref=spec.ref, target=tgt.name, target_file=tgt.path,
                     fingerprint=current_fingerprint(tgt).to_dict(),
                     fractions=list(fractions) if fractions else None, validate=validate_count, seed=seed,
                     table=str(table) if table else None,
                     measured_on=backend.measured_on(tgt)).save(run.path(RunFiles.CONFIG))
    if given is None:
        reporter.phase(f"profiling {spec.name} on {tgt.name}", profile_steps(spec, tgt, fractions))
        measured = measure_table(spec, tgt, steps_of(reporter), fractions, backend)
        destination = out or default_table_path(tables_dir(), spec.key, tgt.name)
        measured.save(destination)
        reporter.note(f"table written to {destination}")
    else:
        measured, destination = given, Path(table)
    measured.save(run.path(RunFiles.TABLE))
    report = None
    if validate_count:
        reporter.phase(f"validating {validate_count + 2} configurations", validate_steps(tgt, validate_count))
        report = validate(measured, spec, tgt, validate_count, seed, steps_of(reporter), backend.measure_configs)
        report.save(run.path(RunFiles.VALIDATION))
    return ProfileResult(measured, destination, run.root, write_report(run.root), report)


def _given_table(path: Path, spec: ModelSpec, target: Target, force: bool) -> LatencyTable:
    table = load_table(path)
    table.check_device(current_fingerprint(target), force=force, source=str(path))
    if table.model != spec.name:
        raise InputError(f"--table: {path} is for model {table.model}, not {spec.name}")
    return table


def _predicted(spec: ModelSpec, target: Target, out: Path | None, run: RunDirectory) -> ProfileResult:
    """A roofline table, stored unless a measured table is there already."""
    destination = out or default_table_path(tables_dir(), spec.key, target.name)
    if destination.exists() and load_table(destination).kind == "measured":
        raise InputError(f"--predict: {destination} holds a measured table, which a prediction never replaces "
                         "(give --out to write the prediction elsewhere)")
    table = predict_table(spec, target)
    run.create()
    ProfileRunConfig(model=spec.name, model_ref=spec.ref, target=target.name, target_file=target.path,
                     fingerprint=table.fingerprint,
                     predict=True).save(run.path(RunFiles.CONFIG))
    table.save(destination)
    table.save(run.path(RunFiles.TABLE))
    return ProfileResult(table, destination, run.root, write_report(run.root))


def stale_reason(table: LatencyTable, spec: ModelSpec, target: Target) -> str | None:
    """Why ``table`` cannot stand for the model on ``target`` on this machine (None when it can)."""
    if table.model != spec.name or table.target != target.name:
        return f"it is for {table.model} on {table.target}"
    if table.kind != "measured":
        return f"it is {table.kind}, not measured (run `hirelc profile` on the device)"
    diffs = table.fingerprint_differences(current_fingerprint(target))
    if diffs:
        return f"it was measured on another device ({'; '.join(diffs)})"
    measured_as, written_as = table.method.get("graph_format", ""), backend_of(target).graph_format
    if measured_as != written_as:
        return (f"it was measured on graphs written as '{measured_as or 'an earlier format'}', and this version "
                f"writes '{written_as}'")
    return _grid_reason(table, spec, target)


def _grid_reason(table: LatencyTable, spec: ModelSpec, target: Target) -> str | None:
    if table.model != spec.name or table.target != target.name:
        return f"it is for {table.model} on {table.target}"
    blocks = spec.blocks()
    shape = list(model_input_shape(spec, target))
    if list(table.input_shape) != shape:
        return f"it was measured with input {table.input_shape}, not {shape}"
    if [b.name for b in table.blocks] != [b.name for b in blocks]:
        return "its blocks are not the model's (the model changed since it was measured)"
    if ([list(b.widths) for b in table.blocks] != target.width_grid(blocks)
            or not set(target.precisions) <= set(table.precisions)):
        return "its widths or precisions differ from the target's grid"
    return None


def ensure_table(spec: ModelSpec, target: Target, tables: Path, path: Path | None = None,
                 progress: Progress | None = None, backend: Backend | None = None) -> tuple[LatencyTable, str]:
    """(table, how it was obtained). A given ``path`` must fit this device and grid; otherwise the stored
    table in ``tables`` is reused when it fits and re-measured (and stored) when it does not.

    A target whose backend cannot measure here plans instead: a given or stored table (measured on the device,
    or predicted) only has to fit the target's grid, and where none does the roofline predicts one, which is not
    stored (the tables directory holds what a user measured or asked for).
    """
    cannot_measure = backend_of(target).unavailable()
    planning = cannot_measure is not None
    unfit = _grid_reason if planning else stale_reason
    if path is not None:
        table = load_table(path)
        reason = unfit(table, spec, target)
        if reason:
            raise TableError(f"--table {path}: cannot be used here: {reason}")
        return table, f"given ({path})" + (f", {table.kind}" if planning else "")
    stored = default_table_path(tables, spec.key, target.name)
    if stored.exists():
        table = load_table(stored)
        reason = unfit(table, spec, target)
        if reason is None:
            return table, f"reused ({stored})" + (f", {table.kind}" if planning else "")
        how = f"re-measured: the stored table could not be used because {reason}"
    else:
        how = "measured (no stored table)"
    if planning:
        return predict_table(spec, target), f"predicted by the roofline model ({cannot_measure})"
    table = measure_table(spec, target, progress, backend=backend)
    table.save(stored)
    return table, f"{how}; saved to {stored}"


def measure_table(spec: ModelSpec, target: Target, progress: Progress | None = None,
                  fractions: Sequence[float] | None = None, backend: Backend | None = None) -> LatencyTable:
    """Profile the model on the target's device with its backend (``backend``: that backend leased through
    ``devices.leased_backend``)."""
    backend = backend or backend_of(target)
    return measured_table(spec, target, backend.measure_configs, current_fingerprint(target), fractions, progress,
                          {"measured_on": backend.measured_on(target), "graph_format": backend.graph_format,
                           **backend.profile_method(target)})
