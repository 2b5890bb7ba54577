"""Read-only access to a run directory's records for the report.

Every problem with a record (missing where required, not JSON, a field missing or of the wrong type) is an
``InputError`` naming the file, so ``hirelc report`` prints one line instead of a traceback. Nothing here
writes to the run directory: the report may be rebuilt while a run is still appending to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..errors import InputError
from ..resume import CANDIDATES, CONFIG, parse_candidates
from ..runs import read_json_object

NUMBER = (int, float)
NUMBERS = "a list of numbers"  # a field kind ``require`` checks element by element

Fields = Mapping[str, "type | tuple[type, ...] | str"]


def _is_number(value: Any) -> bool:
    return isinstance(value, NUMBER) and not isinstance(value, bool)


def _fits(value: Any, kind) -> bool:
    if kind is NUMBER:
        return _is_number(value)
    if kind is NUMBERS:
        return isinstance(value, list) and all(_is_number(v) for v in value)
    return isinstance(value, kind)


def _kind_name(kind) -> str:
    return "a number" if kind is NUMBER else kind if isinstance(kind, str) else f"a {kind.__name__}"


def require(record: Mapping[str, Any], fields: Fields, source: str) -> None:
    """Refuse a record that lacks one of ``fields`` or holds a value of another kind (bools are not numbers)."""
    for name, kind in fields.items():
        if name not in record or not _fits(record[name], kind):
            raise InputError(f"{source}: malformed record ('{name}' missing or not {_kind_name(kind)})")


def require_each(rows: Any, fields: Fields, source: str) -> list[dict]:
    """``rows`` checked to be a list of objects that each hold ``fields``."""
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise InputError(f"{source}: malformed record (expected a list of objects)")
    for number, row in enumerate(rows, 1):
        require(row, fields, f"{source}, item {number}")
    return rows


@dataclass(frozen=True)
class Candidates:
    """The evaluations in ``candidates.jsonl`` and whether its last line was cut short (a killed run)."""

    rows: list[dict]
    truncated: bool


class RunRecords:
    """The records of one run directory, read on demand."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, name: str) -> Path:
        """Where record ``name`` lives."""
        return self.root / name

    def has(self, name: str) -> bool:
        """Whether record ``name`` exists (as a file)."""
        return self.path(name).is_file()

    def object(self, name: str, what: str, fields: Fields | None = None) -> dict | None:
        """The JSON object in ``name`` (None when absent), checked to hold ``fields``."""
        if not self.has(name):
            return None
        data = read_json_object(self.path(name), what, InputError)
        require(data, fields or {}, str(self.path(name)))
        return data

    def rows(self, name: str, fields: Fields) -> list[dict] | None:
        """The JSON list of objects in ``name`` (None when absent), each checked to hold ``fields``."""
        if not self.has(name):
            return None
        path = self.path(name)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: not valid JSON ({exc})") from None
        return require_each(data, fields, str(path))

    def candidates(self, fields: Fields) -> Candidates:
        """The evaluations recorded so far, each checked to hold ``fields``.

        Only the last line may be cut short (by a kill while it was written); a bad line before it means the file
        was damaged by something else. Unlike ``resume.read_candidates`` this never rewrites the file.
        """
        path = self.path(CANDIDATES)
        rows, truncated = parse_candidates(path)
        for number, row in enumerate(rows, 1):
            require(row, fields, f"{path}: line {number}")
        return Candidates(rows, truncated)


def run_kind(root: Path) -> str:
    """``"compress"`` or ``"profile"``: what kind of run ``root`` holds (InputError when it holds neither)."""
    root = Path(root)
    if not root.exists():
        raise InputError(f"{root}: no such run directory")
    if not root.is_dir():
        raise InputError(f"{root}: not a directory (expected a run directory)")
    records = RunRecords(root)
    config = records.object(CONFIG, "run configuration") or {}
    command = config.get("command")
    if command in ("compress", "profile"):
        return command
    if command is not None:
        raise InputError(f"{root}: holds a '{command}' run; reports exist for compress and profile runs")
    # Compress runs written before config.json had a "command" key are recognised by what only they hold.
    if records.has(CANDIDATES) or "latency_budget" in config:
        return "compress"
    raise InputError(f"{root}: not a compress or profile run directory "
                     f"({'config.json has no command' if config else 'no config.json or candidates.jsonl'})")
