"""Continuing a ``compress`` run from its run directory after a crash or ``kill -9``.

What a run has finished is what its directory holds: every record is written atomically (complete or absent)
except ``candidates.jsonl``, which grows one fsynced line per evaluation, so a kill can cut at most its last
line. Resuming reuses every finished record and replays the search with the recorded evaluations pre-filled in
the evaluator's cache: the search is deterministic for a seed and the evaluation of a configuration does not
depend on what was evaluated before it, so the replay proposes the same configurations in the same order and
ends where an uninterrupted run ends. Stages that only measure (calibration, finalists, the final benchmark)
are reused when their record exists; a kill in the middle of one repeats that measurement.
"""

from __future__ import annotations

import json
import logging
from dataclasses import fields
from pathlib import Path
from typing import Any

from .errors import InputError
from .records import Candidate, CompressConfig, CompressRunConfig
from .runs import RunFiles, atomic_write_text, read_json_object
from .search.evaluate import EvalResult
from .targets import Fingerprint
from .targets.fingerprint import recorded_differences

log = logging.getLogger(__name__)


def parse_candidates(path: Path) -> tuple[list[Candidate], bool]:
    """The evaluations in a ``candidates.jsonl`` file (none when it is absent) and whether its last line was
    cut short by a kill (that line is left out). A bad line anywhere else means the file was damaged by
    something else, and is an error naming the file and line. Reads only."""
    path = Path(path)
    if not path.is_file():
        return [], False
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not valid UTF-8 text ({exc})") from None
    records = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number < len(lines):
                raise InputError(f"{path}: line {number} is not valid JSON (the file was damaged)") from None
            return records, True
        records.append(Candidate.from_dict(record, f"{path}: line {number}"))
    return records, False


def read_candidates(run_dir: Path) -> list[Candidate]:
    """The evaluations recorded in ``run_dir/candidates.jsonl``, ready to be appended to: a last line cut by a
    kill is dropped from the file too, so the next record starts on a fresh line."""
    path = Path(run_dir) / RunFiles.CANDIDATES
    records, cut = parse_candidates(path)
    if cut:
        log.warning("%s: dropping the last line, cut short by the interruption", path)
        atomic_write_text(path, "".join(f"{json.dumps(r.to_dict())}\n" for r in records))
    return records


def evaluation_cache(records: list[Candidate]) -> dict[tuple, EvalResult]:
    """The evaluator cache (keyed by widths and precisions) the recorded evaluations stand for."""
    names = [f.name for f in fields(EvalResult)]
    return {(tuple(r.widths), tuple(r.precisions)): EvalResult(**{n: getattr(r, n) for n in names})
            for r in records}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _stored(run_dir: Path) -> CompressRunConfig:
    if not Path(run_dir).is_dir():
        raise InputError(f"--resume {run_dir}: no such run directory")
    path = Path(run_dir) / RunFiles.CONFIG
    command = read_json_object(path, "run configuration", InputError).get("command")
    if command != "compress":
        raise InputError(f"--resume {run_dir}: it holds a {command} run, not a compress run")
    return CompressRunConfig.load(path)


def resumed_config(run_dir: Path, given: dict[str, Any]) -> CompressConfig:
    """The configuration stored in ``run_dir/config.json``; every flag the user ``given`` again must agree
    with it (a resumed run that changed its configuration would not be the same run)."""
    stored = _stored(run_dir).config
    differing = [f"{_flag(k)} {v} (the run used {getattr(stored, k)})" for k, v in given.items()
                 if hasattr(stored, k) and v != getattr(stored, k)]
    if differing:
        raise InputError(f"--resume {run_dir}: the run was made with a different configuration: "
                         f"{'; '.join(differing)}")
    return stored


def check_same_run(run_dir: Path, config: CompressConfig, weights_sha256: str, fingerprint: Fingerprint) -> None:
    """Refuse to resume ``run_dir`` when its configuration, checkpoint contents or device differ from now."""
    stored = _stored(run_dir)
    if stored.config != config:
        raise InputError(f"--resume {run_dir}: the run was made with a different configuration")
    if stored.weights_sha256 != weights_sha256:
        raise InputError(f"--resume {run_dir}: the checkpoint {config.weights} changed since the run started "
                         "(its sha256 differs)")
    differences = recorded_differences(stored.fingerprint, fingerprint)
    if differences:
        raise InputError(f"--resume {run_dir}: the run was started on another device or target settings "
                         f"({'; '.join(differences)}); its measurements do not hold here")
