"""The backend seam: one ``Backend`` per runtime, looked up by the name a target's TOML gives (``backend = ...``).

A backend is everything that differs between runtimes: whether this machine can measure on it, the device's
fingerprint, how a width/precision variant is built, how variants are timed interleaved and their time split
between blocks, how a deployable artifact is written and how it is benchmarked. The stages (profile, compress,
export, bench) ask the target's backend and never which runtime it is.

Adding a backend is adding one module here, a line to ``_MODULES`` and one to ``BACKEND_PRECISIONS`` (which target
files are checked against without importing the runtime); the module is imported the first time a target uses
it, so heavy runtimes (TensorRT) are never imported by targets that do not need them.

A target whose TOML names a ``[device]`` (the URL of a ``hirelc-agent``) runs on the ``remote`` backend: its
``backend`` key still says which runtime the device runs, and the remote backend times there what this machine
builds.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Sequence

from ...errors import TargetError
from ...precision import Precision

if TYPE_CHECKING:
    import numpy as np
    from hirelc_agent.timing import Timing
    from torch import nn

    from ...data import Images, Normalize
    from ...artifacts.manifest import Manifest
    from ...latency.profile import Config, Measured, Progress
    from ...models import ModelSpec
    from ...policy import Policy
    from ...records import BenchResult
    from ..fingerprint import Fingerprint
    from ..target import Target


# backend name (a target's ``backend``) -> module (in this package) defining ``BACKEND``
_MODULES = {"onnxruntime": "onnxruntime", "tensorrt": "tensorrt", "remote": "remote"}
REMOTE = "remote"  # the backend of every target with a [device]
REMOTE_RUNTIMES = frozenset({"onnxruntime"})  # what a hirelc-agent times
# What each runtime can run: target files are checked against it without importing the runtime.
BACKEND_PRECISIONS = {
    "onnxruntime": frozenset({Precision.FP32, Precision.INT8}),
    "tensorrt": frozenset({Precision.FP32, Precision.FP16, Precision.INT8, Precision.FP8}),
}


class Backend(Protocol):
    """How one runtime builds, measures and benches the variants of a model on a target.

    A remote device is one more backend: the same calls, answered by an agent on the device.
    """

    name: str
    calibrates: bool  # whether compress corrects its table against engines timed now and times its finalists
    final_rounds: int  # measurements of the exported engine the verdict takes the median of
    graph_format: str  # how variants are written; a table measured on graphs written otherwise is stale
    fake_quant_int8: bool  # whether apply/fake_quant.py simulates its INT8 (ONNX Runtime's QDQ scheme)

    def unavailable(self) -> str | None:
        """Why this machine cannot measure on this runtime (None when it can)."""

    def fingerprint(self, target: Target) -> Fingerprint:
        """The identity of the device ``target`` runs on (this machine, or the remote device) and its runtime."""

    def measured_on(self, target: Target) -> str:
        """Where ``target``'s latencies are measured, in words for records and reports."""

    def build_variant(self, spec: ModelSpec, widths: Sequence[int], precisions: Sequence[str],
                      input_shape: Sequence[int], path: Path) -> Path:
        """Write the deployable graph of ``spec`` at a width/precision configuration (random weights)."""

    def measure_configs(self, spec: ModelSpec, target: Target, configs: Sequence[Config], workdir: Path,
                        progress: Progress | None = None, profiled: int = 0) -> Measured:
        """Build every configuration, split the first ``profiled`` ones' time between blocks, and time all of
        them interleaved (with the runtime's per-call overhead)."""

    def profile_method(self, target: Target) -> dict:
        """What the backend records in a table's ``method`` about how it measured."""

    def time_configs(self, spec: ModelSpec, target: Target, configs: Sequence[tuple[Sequence[int], Sequence[str]]]
                     ) -> list[Timing]:
        """Configurations built with random weights and timed interleaved (where the runtime needs it, in a fresh
        process, away from this one's PyTorch work)."""

    def write_artifact(self, student: nn.Module, teacher: nn.Module, spec: ModelSpec, policy: Policy,
                       input_shape: Sequence[int], calibration: Sequence[np.ndarray], checks: Sequence[np.ndarray],
                       out_dir: Path, table_fingerprint: dict, finetune: dict, sparse_layers: Sequence[str] = ()
                       ) -> Manifest:
        """Export a pruned, fine-tuned model with the policy's precisions into ``out_dir``, checked, with a
        manifest written last."""

    def artifact_reusable(self, manifest: Manifest) -> bool:
        """Whether an intact export made earlier (a resumed run) can stand here, or must be made again."""

    def bench_export(self, artifacts: Path, target: Target, images: Images, normalize: Normalize) -> BenchResult:
        """An export directory's model against its uncompressed baseline: latency where this machine can measure
        it (else ``not_measured`` says why), top-1 on ``images``, sizes."""

    def time_export(self, artifacts: Path, target: Target) -> tuple[float, float]:
        """(model ms, baseline ms) of an export directory from one more interleaved measurement."""

    def check_bench(self, artifact: Path, baseline: Path | None, scoring: bool) -> None:
        """Refuse, before any work, files this runtime cannot bench (or score, when ``scoring``)."""

    def bench_files(self, artifact: Path, target: Target, baseline: Path | None, images: Images | None,
                    normalize: Normalize, progress: Progress | None = None) -> BenchResult:
        """``hirelc bench``: latency of a deployable file (interleaved with ``baseline``) and top-1 on
        ``images`` where the runtime can score them."""

    def bench_steps(self, target: Target, baseline: bool) -> int:
        """Progress units ``bench_files`` reports."""


_LOADED: dict[str, Backend] = {}


def get_backend(name: str) -> Backend:
    """The backend called ``name`` (its module imported on first use)."""
    if name not in _MODULES:
        raise TargetError(f"unknown backend '{name}' (choose from {', '.join(_MODULES)})")
    if name not in _LOADED:
        _LOADED[name] = importlib.import_module(f"{__name__}.{_MODULES[name]}").BACKEND
    return _LOADED[name]


def backend_of(target: Target) -> Backend:
    """The backend a target runs on."""
    return get_backend(REMOTE if target.device is not None else target.backend)


def current_fingerprint(target: Target) -> Fingerprint:
    """Fingerprint of the device ``target`` runs on, with its runtime and settings, as it is now."""
    return backend_of(target).fingerprint(target)

