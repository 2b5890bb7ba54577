"""LatencyTable: what each block costs on a target, at each inner width and precision, plus fixed costs.

The prediction for a configuration is additive::

    fixed + sum_b block_b(width_b, precision_b) + sum_k transition_k(precision_{k-1} -> precision_k)

Block entries are measured in the context of whole networks where every block shares the precision, so they
include whatever fusion ONNX Runtime does inside and across the block. Where adjacent blocks differ in precision
the runtime converts the tensor between them (QuantizeLinear / DequantizeLinear and layout transposes); that
cost belongs to the boundary and is stored per boundary and direction. Boundary 0 is stem -> first block and
boundary n is last block -> head; stem and head always run FP32. A block isolated between two boundaries
(``fp32 int8 fp32``) converts more cheaply than blocks in longer runs; ``isolated_block_factor`` is the fraction
of its mean boundary cost it saves, measured on alternating networks.

A removed block (width 0) runs only its shortcut and converts nothing: the precision chain skips it, and the
change between the kept blocks on either side of it is charged to the boundary entering the next kept block.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from ..errors import TableError
from ..precision import REFERENCE, Precision
from ..runs import atomic_write_json, read_json_object
from ..targets import Fingerprint
from ..targets.fingerprint import recorded_differences

SCHEMA_VERSION = 1
STEM_HEAD_PRECISION = REFERENCE


def _isolated(costs: Sequence[float]) -> float:
    """Of a chain's boundary costs: the sum over isolated kept blocks (a cost on both sides) of their mean."""
    return sum((a + b) / 2 for a, b in zip(costs, costs[1:]) if a and b)


def transition_key(before: str, after: str) -> str:
    """Key of a precision change across a boundary, e.g. ``fp32->int8``."""
    return f"{before}->{after}"


def normalize_precisions(widths: Sequence[int], precisions: Sequence[str]) -> tuple[str, ...]:
    """Precisions with every removed block (width 0) recorded as FP32: it has no kernels to run in INT8."""
    return tuple(STEM_HEAD_PRECISION if w == 0 else p for w, p in zip(widths, precisions))


def precision_chain(widths: Sequence[int], precisions: Sequence[str]) -> list[tuple[int, str]]:
    """(boundary index, precision) of the stem, every kept block and the head, in order.

    Element k > 0 is entered through the boundary it names: kept block i through boundary i, the head through
    boundary n. Removed blocks are skipped, so their neighbours meet at the later block's boundary.
    """
    kept = [(i, p) for i, (w, p) in enumerate(zip(widths, precisions)) if w != 0]
    return [(0, STEM_HEAD_PRECISION), *kept, (len(widths), STEM_HEAD_PRECISION)]


@dataclass
class BlockLatency:
    """Latency of one block (ms) per precision, aligned with ``widths``."""

    name: str
    full_width: int
    widths: list[int]
    latency_ms: dict[str, list[float]]
    spread_ms: dict[str, list[float]]

    def lookup(self, width: int, precision: str) -> float:
        """Latency of this block at an inner width and precision the table holds."""
        if precision not in self.latency_ms:
            raise TableError(f"block {self.name}: precision '{precision}' not in table ({', '.join(self.latency_ms)})")
        if width not in self.widths:
            raise TableError(f"block {self.name}: inner width {width} not in table (widths {self.widths})")
        return self.latency_ms[precision][self.widths.index(width)]


@dataclass
class LatencyTable:
    """A block latency table for one model on one target, saved as JSON with a schema version."""

    model: str
    target: str
    kind: str  # "measured" on the device, or "predicted" by a model of it
    fingerprint: dict
    input_shape: list[int]
    fixed_ms: float
    blocks: list[BlockLatency]
    transitions_ms: list[dict[str, float]]  # one dict per boundary (len(blocks) + 1)
    isolated_block_factor: float = 0.0
    created: str = ""
    method: dict = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @property
    def precisions(self) -> list[str]:
        return list(self.blocks[0].latency_ms) if self.blocks else []

    def predict(self, widths: Sequence[int], precisions: Sequence[str]) -> float:
        """Predicted end-to-end latency (ms) of a configuration: one inner width and precision per block."""
        return sum(self.predict_parts(widths, precisions))

    def predict_parts(self, widths: Sequence[int], precisions: Sequence[str]) -> tuple[float, float, float]:
        """The prediction split into (FP32 incl. stem and head, INT8 blocks, precision boundaries), which
        calibration scales separately."""
        if len(widths) != len(self.blocks) or len(precisions) != len(self.blocks):
            raise TableError(f"configuration has {len(widths)} widths and {len(precisions)} precisions, "
                             f"the table has {len(self.blocks)} blocks")
        precisions = normalize_precisions(widths, precisions)
        fp32, int8 = self.fixed_ms, 0.0
        for block, w, p in zip(self.blocks, widths, precisions):
            if p == Precision.INT8:
                int8 += block.lookup(w, p)
            else:
                fp32 += block.lookup(w, p)
        costs = self.boundary_costs(widths, precisions)
        return fp32, int8, sum(costs) - self.isolated_block_factor * _isolated(costs)

    def boundary_costs(self, widths: Sequence[int], precisions: Sequence[str]) -> list[float]:
        """Conversion cost entering each element of the precision chain after the stem (kept blocks, head)."""
        chain = precision_chain(widths, precisions)
        return [self.transitions_ms[k].get(transition_key(a, b), 0.0) if a != b else 0.0
                for (_, a), (k, b) in zip(chain, chain[1:])]

    def isolated_saving(self, precisions: Sequence[str], widths: Sequence[int] | None = None) -> float:
        """Sum over isolated kept blocks (both neighbours in another precision) of their mean boundary cost."""
        return _isolated(self.boundary_costs(widths or [1] * len(precisions), precisions))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str = "latency table") -> "LatencyTable":
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise TableError(f"{source}: schema_version {version!r} unsupported (expected {SCHEMA_VERSION})")
        try:
            blocks = [BlockLatency(**b) for b in data["blocks"]]
            return cls(**{**data, "blocks": blocks})
        except (KeyError, TypeError) as exc:
            raise TableError(f"{source}: malformed latency table ({exc})") from None

    def save(self, path: Path) -> Path:
        """Write the table atomically as JSON."""
        atomic_write_json(Path(path), self.to_dict())
        return Path(path)

    def fingerprint_differences(self, current: Fingerprint) -> list[str]:
        """Where this table's device fingerprint differs from ``current`` (empty when it matches)."""
        return recorded_differences(self.fingerprint, current)

    def check_device(self, current: Fingerprint, force: bool = False, source: str = "latency table") -> None:
        """Refuse a table measured on another device or runtime setting unless ``force``.

        A predicted table was measured nowhere: it stands for its target on any machine, labelled predicted.
        """
        if self.kind == "predicted":
            return
        diffs = self.fingerprint_differences(current)
        if diffs and not force:
            raise TableError(f"{source}: measured on another device ({'; '.join(diffs)}); use --force to use it anyway")


def load_table(path: Path) -> LatencyTable:
    """Read a latency table JSON file, with clear errors for missing, corrupt or foreign-schema files."""
    return LatencyTable.from_dict(read_json_object(path, "latency table", TableError), source=str(path))


def default_table_path(tables_dir: Path, model: str, target: str) -> Path:
    """Conventional location of the table for a model on a target."""
    return Path(tables_dir) / f"{model}__{target}.json"
