"""Where targets come from: the user's targets directory first, then the targets shipped inside the package."""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

from hirelc_agent.machine import cpu_info

from ..errors import TargetError
from ..precision import Precision
from ..runs import atomic_write_text
from ..settings import user_targets_dir
from .agent_client import AgentClient
from .backends import BACKEND_PRECISIONS
from .target import DeviceSettings, Target, parse_target

# Package data: a wheel is installed unpacked, so the shipped TOML files are plain files beside this module.
SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"

_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class TargetSource:
    """One target a name resolves to: its file, whether the user or the package provides it, and the shipped
    file it hides when a user target takes a shipped target's name."""

    name: str
    path: Path
    origin: Literal["user", "shipped"]
    shadows: Path | None = None


def _tomls(directory: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(directory.glob("*.toml"))} if directory.is_dir() else {}


def target_sources() -> list[TargetSource]:
    """Every target a name can resolve to, user targets first (each sorted by name); a shipped target whose name
    a user target takes is not listed but named in that user target's ``shadows``."""
    user, shipped = _tomls(user_targets_dir()), _tomls(SHIPPED_DIR)
    return ([TargetSource(name, path, "user", shipped.get(name)) for name, path in user.items()]
            + [TargetSource(name, path, "shipped") for name, path in shipped.items() if name not in user])


def available_targets() -> list[str]:
    """Names ``load_target`` accepts (user and shipped targets), sorted."""
    return sorted(s.name for s in target_sources())


def load_target(name_or_path: str) -> Target:
    """Load a target by path to a TOML file, or by name: the user's targets directory first, then the shipped
    targets."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists():
        return parse_target(candidate)
    for source in target_sources():
        if source.name == name_or_path:
            return parse_target(source.path)
    raise TargetError(f"--target: unknown target '{name_or_path}' (choose from {', '.join(available_targets())} "
                      "or give a .toml path)")


def _toml_value(value) -> str:
    # A JSON string, number or list of them is also a TOML one.
    return json.dumps(value, ensure_ascii=False)


def new_target(name: str, threads: int, batch_size: int, precisions: Sequence[str] = (Precision.FP32, Precision.INT8),
               directory: Path | None = None, force: bool = False, agent: DeviceSettings | None = None,
               execution_provider: str = "CPUExecutionProvider") -> Path:
    """Write a target for this machine's CPU, or with ``agent`` for the device whose hirelc-agent it names (asked
    for its CPU and execution providers): ONNX Runtime, ``execution_provider``, ``threads`` intra-op threads,
    batches of ``batch_size``, as ``NAME.toml`` in ``directory`` (default: the user's targets directory); the
    path written. The width grid and measurement settings are those of the shipped ``cpu-ort-1t``. An existing
    file is only replaced with ``force``."""
    if not _NAME.fullmatch(name) or name.endswith(".toml"):
        raise TargetError(f"NAME '{name}': a target name is a file stem of letters, digits, '-', '_' and '.' "
                          "(not starting with '.', without .toml)")
    for flag, value in (("--threads", threads), ("--batch", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise TargetError(f"{flag}: must be a whole number of at least 1, got {value!r}")
    allowed = BACKEND_PRECISIONS["onnxruntime"]
    bad = [p for p in precisions if p not in allowed]
    if bad or not precisions:
        raise TargetError(f"--precisions: onnxruntime cannot run {', '.join(bad) or '(none given)'} "
                          f"(choose from {', '.join(sorted(allowed))})")
    path = Path(directory or user_targets_dir()) / f"{name}.toml"
    if path.exists() and not force:
        raise TargetError(f"{path}: already exists (pass --force to overwrite it)")
    # Read from the shipped file rather than restated here, so the two cannot drift apart.
    reference = tomllib.loads((SHIPPED_DIR / "cpu-ort-1t.toml").read_text(encoding="utf-8"))
    if agent is None:
        (cpu, _), cores, where, device = cpu_info(), os.cpu_count(), "this machine", ""
    else:
        described = AgentClient(agent, name).describe()
        if execution_provider not in described["execution_providers"]:
            raise TargetError(f"--execution-provider {execution_provider}: the device at {agent.url} has "
                              f"{', '.join(described['execution_providers'])}")
        cpu, cores = described["cpu_model"], described["cpu_count"]
        where = f"the device at {agent.url} ({described['hostname']}, {described['os']})"
        device = (f"\n# The hirelc-agent this target measures on; its token is read from ${agent.token_env}.\n"
                  f"[device]\nurl = {_toml_value(agent.url)}\ntoken_env = {_toml_value(agent.token_env)}\n")
    plural = "s" if threads > 1 else ""
    description = f"ONNX Runtime {execution_provider} on {cpu}, {threads} intra-op thread{plural}, batch {batch_size}"
    measure = "".join(f"{key} = {_toml_value(value)}\n" for key, value in reference.get("measure", {}).items())
    text = f"""# Written by `hirelc targets new` for {where} ({cores} logical CPUs).
schema_version = 1
name = {_toml_value(name)}
description = {_toml_value(description)}
backend = "onnxruntime"
execution_provider = {_toml_value(execution_provider)}
precisions = {_toml_value(list(dict.fromkeys(precisions)))}
threads = {threads}
batch_size = {batch_size}
channel_multiple = {reference["channel_multiple"]}
# 0.0: a residual block may be removed altogether (only its shortcut runs).
width_fractions = {_toml_value(reference["width_fractions"])}

[measure]
{measure}{device}"""
    atomic_write_text(path, text)
    return path
