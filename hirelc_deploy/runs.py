"""File I/O for records: atomic writes (a crash never leaves a file that looks complete but is not) and
JSON reads with errors that name the file."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import InputError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import: os.umask can only be read by setting it, which is not thread-safe to do per write.
_UMASK = _current_umask()


def read_json_object(path: Path, what: str, error: type[Exception]) -> dict:
    """Read a JSON object from ``path``; missing, corrupt or non-object files raise ``error`` naming the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise error(f"{path}: not a {what} (expected a JSON object)")
    return data


def read_versioned(path: Path, what: str, schema_version: int) -> dict:
    """Read a record written with ``schema_version``; another version is an InputError naming the file."""
    data = read_json_object(path, what, InputError)
    if data.get("schema_version") != schema_version:
        raise InputError(f"{path}: {what} schema_version {data.get('schema_version')!r} unsupported "
                         f"(expected {schema_version})")
    return data


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); records and reports are meant to be read and handed on.
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 text atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class RunDirectory:
    """A run's directory: every input, intermediate record and output of one command, so it can be
    inspected and reproduced later. JSON records are written atomically; logs are appended line by line."""

    def __init__(self, path: Path, create: bool = True):
        self.root = Path(path)
        if create:
            self.create()

    def create(self) -> None:
        """Make the directory (and its parents) if it does not exist."""
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        return self.root / name

    def write_json(self, name: str, obj: Any) -> Path:
        atomic_write_json(self.path(name), obj)
        return self.path(name)

    def append_jsonl(self, name: str, obj: Any) -> None:
        """Append one JSON line and flush it to disk, so a crash loses at most the line being written."""
        with open(self.path(name), "a", encoding="utf-8") as handle:
            handle.write(json.dumps(obj) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
