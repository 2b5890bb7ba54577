"""Manifest: what an exported artifact is, where it came from, and checksums to prove it is intact."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..records import ModelRef, Record
from ..runs import sha256

if TYPE_CHECKING:
    from ..models import ModelSpec

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"


@dataclass
class Manifest(Record):
    """Description of an export directory: policy, target, predicted latency (labelled) and file checksums."""

    what: ClassVar[str] = "manifest"
    model: str
    target: str
    policy: dict
    predicted_latency_ms: float | None
    latency_kind: str  # "measured" table or "predicted" table behind the prediction
    table_fingerprint: dict
    files: dict[str, dict]  # name -> {"sha256": ..., "bytes": ...}
    # block -> evidence it runs quantized: ONNX Runtime's quantized kernels, or TensorRT's graph precision
    quantized_blocks: dict[str, list[str]] = field(default_factory=dict)
    checks: dict = field(default_factory=dict)
    finetune: dict = field(default_factory=dict)
    backend: str = "onnxruntime"  # what the artifact is built for: onnxruntime or tensorrt
    engine: dict = field(default_factory=dict)  # tensorrt: whether the engine was built (or why not) and how
    created: str = ""
    model_ref: ModelRef | None = None  # how to build the model again (factory, input shape, normalisation)
    schema_version: int = SCHEMA_VERSION

    def write(self, directory: Path) -> Path:
        """Save the manifest as ``directory/manifest.json`` (written last: it vouches for the other files)."""
        return self.save(Path(directory) / MANIFEST_NAME)

    def verify(self, directory: Path) -> list[str]:
        """Problems found comparing the files in ``directory`` with the recorded checksums (empty = intact)."""
        problems = []
        for name, info in self.files.items():
            path = Path(directory) / name
            if not path.is_file():
                problems.append(f"{name}: missing")
            elif path.stat().st_size != info["bytes"] or sha256(path) != info["sha256"]:
                problems.append(f"{name}: checksum mismatch")
        return problems


def model_ref_of(spec: ModelSpec) -> ModelRef:
    """The manifest's record of a ``ModelSpec``: its reference with the input shape and normalisation it
    resolved to (``hirelc bench`` reads the normalisation from here, without running a user's code)."""
    ref = spec.ref or ModelRef(spec.name)
    return dataclasses.replace(ref, input_shape=list(spec.input_shape), mean=list(spec.mean), std=list(spec.std))


def file_entry(path: Path) -> dict:
    """Checksum record of one file."""
    return {"sha256": sha256(path), "bytes": Path(path).stat().st_size}


def load_manifest(directory: Path) -> Manifest:
    """Read ``directory/manifest.json``."""
    return Manifest.load(Path(directory) / MANIFEST_NAME)
