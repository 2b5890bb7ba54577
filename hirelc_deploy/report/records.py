"""Read-only access to a run directory's typed records for the report.

Every problem with a record (not JSON, another schema version, a field missing or of the wrong type) is an
``InputError`` naming the file (``records.Record``), so ``hirelc report`` prints one line instead of a traceback.
Nothing here writes to the run directory: the report may be rebuilt while a run is still appending to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

from ..errors import InputError
from ..records import Candidate
from ..resumption import parse_candidates
from ..runs import RunFiles, read_json_object

T = TypeVar("T")


@dataclass(frozen=True)
class Candidates:
    """The evaluations in ``candidates.jsonl`` and whether its last line was cut short (a killed run)."""

    rows: list[Candidate]
    truncated: bool


class RunRecords:
    """The records of one run directory, read on demand."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, name: str) -> Path:
        """Where record ``name`` (one of ``RunFiles``) lives."""
        return self.root / name

    def has(self, name: str) -> bool:
        """Whether record ``name`` exists (as a file)."""
        return self.path(name).is_file()

    def load(self, name: str, reader: Callable[[Path], T]) -> T | None:
        """Record ``name`` read by ``reader`` (a record type's ``load``), None when it does not exist."""
        return reader(self.path(name)) if self.has(name) else None

    def candidates(self) -> Candidates:
        """The evaluations recorded so far. Only the last line may be cut short (by a kill while it was written);
        a bad line before it means the file was damaged by something else. Unlike ``resume.read_candidates``
        this never rewrites the file."""
        rows, truncated = parse_candidates(self.path(RunFiles.CANDIDATES))
        return Candidates(rows, truncated)


def run_kind(root: Path) -> str:
    """``"compress"`` or ``"profile"``: what kind of run ``root`` holds (InputError when it holds neither)."""
    root = Path(root)
    if not root.exists():
        raise InputError(f"{root}: no such run directory")
    if not root.is_dir():
        raise InputError(f"{root}: not a directory (expected a run directory)")
    records = RunRecords(root)
    config = read_json_object(records.path(RunFiles.CONFIG), "run configuration", InputError) \
        if records.has(RunFiles.CONFIG) else {}
    # A compress configuration is recognised by what only it holds, should its "command" be missing.
    command = config.get("command", "compress" if "config" in config or records.has(RunFiles.CANDIDATES) else None)
    if command in ("compress", "profile"):
        return command
    if command is not None:
        raise InputError(f"{root}: holds a '{command}' run; reports exist for compress and profile runs")
    raise InputError(f"{root}: not a compress or profile run directory "
                     f"({'config.json has no command' if config else 'no config.json or candidates.jsonl'})")
