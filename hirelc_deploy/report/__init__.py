"""``hirelc report``: one self-contained ``report.html`` per run directory (figures embedded as PNG, inline
CSS, no scripts, nothing fetched), rebuilt from the run's records so it also works for incomplete runs."""

from __future__ import annotations

from pathlib import Path

from ..runs import RunFiles, atomic_write_text
from .compress_run import compress_report
from .profile_run import profile_report
from .records import RunRecords, run_kind

BUILDERS = {"compress": compress_report, "profile": profile_report}

__all__ = ["write_report"]


def write_report(run_dir: Path) -> Path:
    """Rebuild RUN_DIR/report.html from the records in the run directory; returns its path.

    Raises ``InputError`` (naming the directory or file) for a directory that holds no compress or profile run
    and for a record that is corrupt.
    """
    run_dir = Path(run_dir)
    html = BUILDERS[run_kind(run_dir)](RunRecords(run_dir))
    path = run_dir / RunFiles.REPORT
    atomic_write_text(path, html)
    return path
