"""Device fingerprints: what a latency table was measured on, so it is never silently used elsewhere."""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .target import Target

# CPU features that change which kernels ONNX Runtime picks (and so the latencies).
_RELEVANT_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni",
                   "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16")


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


@functools.cache
def cpu_info() -> tuple[str, tuple[str, ...]]:
    """This machine's CPU model name and the CPU features that change ONNX Runtime's kernels (read once: every
    fingerprint of a run asks)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    return model, tuple(f for f in _RELEVANT_FLAGS if f in flags)


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
