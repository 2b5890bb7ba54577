"""Device fingerprints: what a latency table was measured on, so it is never silently used elsewhere."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from hirelc_agent.machine import cpu_info

if TYPE_CHECKING:
    from .target import Target

@dataclass(frozen=True)
class Fingerprint:
    """Identity of a (device, runtime, execution setting) combination."""

    cpu_model: str
    cpu_flags: tuple[str, ...]
    cpu_count: int
    runtime: str
    runtime_version: str
    execution_provider: str
    threads: int
    batch_size: int
    gpu: str = ""  # the GPU a tensorrt target runs on ("" for CPU targets)

    def to_dict(self) -> dict:
        """JSON-ready form (lists, not tuples, so a saved and reloaded fingerprint compares equal)."""
        return {**asdict(self), "cpu_flags": list(self.cpu_flags)}

    @classmethod
    def from_dict(cls, data: dict) -> "Fingerprint":
        return cls(**{**data, "cpu_flags": tuple(data["cpu_flags"])})

    def differences(self, other: "Fingerprint") -> list[str]:
        """Human-readable list of the fields where ``other`` differs from this fingerprint."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [f"{k}: {mine[k]!r} != {theirs[k]!r}" for k in mine if mine[k] != theirs[k]]


def recorded_differences(recorded: dict, current: Fingerprint) -> list[str]:
    """Where a fingerprint recorded in a file (a table, a run) differs from ``current``; a missing or
    malformed record is one difference, said as such."""
    try:
        return Fingerprint.from_dict(recorded).differences(current)
    except (KeyError, TypeError):
        return ["fingerprint is missing or malformed"]


def machine_identity(target: Target, runtime_version: str, accelerator: str = "") -> Fingerprint:
    """Fingerprint of this machine running ``target`` on a runtime of ``runtime_version`` (and ``accelerator``,
    the GPU, where there is one); the target's backend knows both (``targets.backends.current_fingerprint``)."""
    model, flags = cpu_info()
    return Fingerprint(
        cpu_model=model,
        cpu_flags=flags,
        cpu_count=os.cpu_count() or 1,
        runtime=target.backend,
        runtime_version=runtime_version,
        execution_provider=target.execution_provider,
        threads=target.threads,
        batch_size=target.batch_size,
        gpu=accelerator,
    )


def device_identity(target: Target, device: dict) -> Fingerprint:
    """Fingerprint of the device an agent describes (``hirelc_agent.machine.describe``) running ``target`` on its
    ONNX Runtime (the one runtime agents time)."""
    return Fingerprint(
        cpu_model=device["cpu_model"],
        cpu_flags=tuple(device["cpu_flags"]),
        cpu_count=int(device["cpu_count"]),
        runtime=target.backend,
        runtime_version=device["onnxruntime_version"],
        execution_provider=target.execution_provider,
        threads=target.threads,
        batch_size=target.batch_size,
    )
