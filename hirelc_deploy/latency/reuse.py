"""The table a run uses: the stored one when it was measured here for the same grid, else a fresh profile.

A TensorRT target on a machine that cannot build engines (no tensorrt package or no GPU) plans instead: it uses
a table measured on the GPU elsewhere if one fits, else a roofline prediction, labelled predicted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..errors import TableError
from ..models import get_model_spec
from ..targets import Target, current_fingerprint
from .profile import Progress, profile
from .table import LatencyTable, default_table_path, load_table


def stale_reason(table: LatencyTable, model: str, target: Target) -> str | None:
    """Why ``table`` cannot stand for ``model`` on ``target`` on this machine (None when it can)."""
    if table.model != model or table.target != target.name:
        return f"it is for {table.model} on {table.target}"
    if table.kind != "measured":
        return f"it is {table.kind}, not measured (run `hirelc profile` on the device)"
    diffs = table.fingerprint_differences(current_fingerprint(target))
    if diffs:
        return f"it was measured on another device ({'; '.join(diffs)})"
    return _grid_reason(table, model, target)


def _grid_reason(table: LatencyTable, model: str, target: Target) -> str | None:
    if table.model != model or table.target != target.name:
        return f"it is for {table.model} on {table.target}"
    grid = target.width_grid(get_model_spec(model).blocks())
    if [list(b.widths) for b in table.blocks] != grid or not set(target.precisions) <= set(table.precisions):
        return "its widths or precisions differ from the target's grid"
    return None


def ensure_table(model: str, target: Target, tables_dir: Path, path: Path | None = None,
                 progress: Progress | None = None) -> tuple[LatencyTable, str]:
    """(table, how it was obtained). A given ``path`` must fit this device and grid; otherwise the stored
    table is reused when it fits and re-measured (and stored) when it does not.

    A TensorRT target this machine cannot run (no tensorrt or no GPU) plans instead: a given or stored table
    (measured on the GPU, or predicted) only has to fit the target's grid, and where none does the roofline
    predicts one, which is not stored (the tables directory holds what a user measured or asked for).
    """
    planning = target.backend == "tensorrt" and not engines_available()
    unfit = _grid_reason if planning else stale_reason
    if path is not None:
        table = load_table(path)
        reason = unfit(table, model, target)
        if reason:
            raise TableError(f"--table {path}: cannot be used here: {reason}")
        return table, f"given ({path})" + (f", {table.kind}" if planning else "")
    stored = default_table_path(tables_dir, model, target.name)
    if stored.exists():
        table = load_table(stored)
        reason = unfit(table, model, target)
        if reason is None:
            return table, f"reused ({stored})" + (f", {table.kind}" if planning else "")
        how = f"re-measured: the stored table could not be used because {reason}"
    else:
        how = "measured (no stored table)"
    if planning:
        from .roofline import predict_table

        return predict_table(model, target), "predicted by the roofline model (no GPU here)"
    table = measure_table(model, target, progress)
    table.save(stored)
    return table, f"{how}; saved to {stored}"


def engines_available() -> bool:
    """Whether this machine can build and time TensorRT engines (the tensorrt package and a CUDA GPU)."""
    from ..export.tensorrt import TensorRTError, require_tensorrt

    try:
        require_tensorrt()
    except TensorRTError:
        return False
    return True


def measure_table(model: str, target: Target, progress: Progress | None = None,
                  fractions: Sequence[float] | None = None) -> LatencyTable:
    """Profile ``model`` on this machine with the target's backend."""
    if target.backend == "tensorrt":
        from .trt_runner import profile_tensorrt

        return profile_tensorrt(model, target, fractions, progress)
    return profile(model, target, fractions, progress)
