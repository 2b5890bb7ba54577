"""Run directories and file I/O for records.

Every record is written atomically (a crash never leaves a file that looks complete but is not); JSON reads name
the file in their errors. ``RunFiles`` is the one place that names the files of a run directory, and
``COMPRESS_STAGES`` the one list of a compress run's stages with the records each leaves behind.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

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


class RunFiles:
    """The files of a run directory (what each holds: ``records.py``)."""

    CONFIG = "config.json"
    STATUS = "status.json"
    LOG = "run.log"
    REPORT = "report.html"
    TABLE = "latency_table.json"
    TABLE_CALIBRATED = "latency_table_calibrated.json"
    CALIBRATION = "calibration.json"
    SENSITIVITY = "sensitivity.json"
    BASELINE = "baseline.json"
    CANDIDATES = "candidates.jsonl"
    SEARCH = "search.json"
    FINALISTS = "finalists.json"
    POLICY = "policy.json"
    ARTIFACTS = "artifacts"
    MANIFEST = "artifacts/manifest.json"
    BENCH = "bench.json"
    FINAL_LATENCY = "final_latency.json"
    SUMMARY = "summary.json"
    VALIDATION = "validation.json"
    CHECKS = "checks.json"
    CHECK_ARTIFACTS = "checks"


@dataclass(frozen=True)
class Stage:
    """A stage of a compress run: its name (progress, ``run.log``, ``status.json``) and the records it writes, in
    order; a stage is done when its records exist."""

    name: str
    records: tuple[str, ...]


COMPRESS_STAGES = (
    Stage("the latency table", (RunFiles.TABLE,)),
    Stage("the Fisher sensitivity", (RunFiles.SENSITIVITY,)),
    Stage("the calibration of the table against real engines", (RunFiles.CALIBRATION, RunFiles.BASELINE)),
    Stage("the search", (RunFiles.SEARCH,)),
    Stage("the timing of the finalists", (RunFiles.FINALISTS, RunFiles.POLICY)),
    Stage("fine-tuning and export", (RunFiles.MANIFEST,)),
    Stage("the benchmark of the engine", (RunFiles.BENCH, RunFiles.FINAL_LATENCY, RunFiles.SUMMARY)),
)
TABLE_STAGE, SENSITIVITY_STAGE, CALIBRATION_STAGE, SEARCH_STAGE, FINALISTS_STAGE, EXPORT_STAGE, BENCH_STAGE = \
    COMPRESS_STAGES
# Only with --check-targets, after the run's own result (summary.json) is written.
CHECK_STAGE = Stage("the check on the other targets", (RunFiles.CHECKS,))


def now() -> str:
    """The time records are stamped with (UTC, seconds)."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def default_run_dir(kind: str, model: str, target: str) -> Path:
    """``runs/STAMP-KIND-MODEL-TARGET`` under the current directory."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path.cwd() / "runs" / f"{stamp}-{kind}-{model}-{target}"


class RunDirectory:
    """A run's directory: every input, intermediate record and output of one command, so it can be
    inspected and reproduced later. JSON records are written atomically; logs are appended line by line."""

    def __init__(self, path: Path, create: bool = True):
        self.root = Path(path)
        if create:
            self.create()

    def create(self) -> None:
        """Make the directory (and its parents) if it does not exist; one line naming it when that fails."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"--run-dir {self.root}: cannot create it ({exc.strerror or exc})") from None
        if not os.access(self.root, os.W_OK):
            raise InputError(f"--run-dir {self.root}: not writable")

    def path(self, name: str) -> Path:
        """Where file ``name`` (one of ``RunFiles``) of this run lives."""
        return self.root / name

    def has(self, name: str) -> bool:
        """Whether file ``name`` exists in the run directory."""
        return self.path(name).is_file()

    def append_jsonl(self, name: str, obj: Any) -> None:
        """Append one JSON line and flush it to disk, so a crash loses at most the line being written."""
        with open(self.path(name), "a", encoding="utf-8") as handle:
            handle.write(json.dumps(obj) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


@contextmanager
def run_log(run: RunDirectory) -> Iterator[None]:
    """Copy the package's log records (INFO and up) into ``run.log`` for the run's duration."""
    handler = logging.FileHandler(run.path(RunFiles.LOG), encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    package = logging.getLogger("hirelc_deploy")
    level = package.level
    package.addHandler(handler)
    # Lowered to INFO at most: a --debug run (DEBUG inherited from the root) keeps its DEBUG records.
    package.setLevel(min(package.getEffectiveLevel(), logging.INFO))
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(level)
        handler.close()
