"""The table a run uses: the stored one when it was measured here for the same grid, else a fresh profile."""

from __future__ import annotations

from pathlib import Path

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
    if [list(b.widths) for b in table.blocks] != target.width_grid(get_model_spec(model).blocks()) or not set(target.precisions) <= set(table.precisions):
        return "its widths or precisions differ from the target's grid"
    return None


def ensure_table(model: str, target: Target, tables_dir: Path, path: Path | None = None,
                 progress: Progress | None = None) -> tuple[LatencyTable, str]:
    """(table, how it was obtained). A given ``path`` must fit this device and grid; otherwise the stored
    table is reused when it fits and re-measured (and stored) when it does not."""
    if path is not None:
        table = load_table(path)
        reason = stale_reason(table, model, target)
        if reason:
            raise TableError(f"--table {path}: cannot be used here: {reason}")
        return table, f"given ({path})"
    stored = default_table_path(tables_dir, model, target.name)
    if stored.exists():
        table = load_table(stored)
        reason = stale_reason(table, model, target)
        if reason is None:
            return table, f"reused ({stored})"
        how = f"re-measured: the stored table could not be used because {reason}"
    else:
        how = "measured (no stored table)"
    table = profile(model, target, progress=progress)
    table.save(stored)
    return table, f"{how}; saved to {stored}"
