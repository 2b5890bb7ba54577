"""Policy: the per-block plan (inner width, precision) that the search writes and export reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Sequence

from .errors import InputError
from .records import Record

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class BlockChoice:
    """What one block becomes: its kept inner width and the precision it runs in."""

    name: str
    width: int
    precision: str


@dataclass
class Policy(Record):
    """A compression plan for one model on one target.

    ``predicted_latency_ms`` is what the target's latency table predicts for the plan, never a measurement;
    ``latency_kind`` says whether that table was itself measured on the device or predicted by a model. A block
    of width 0 is removed (only its shortcut runs); its precision is recorded as ``fp32`` and means nothing.
    """

    what: ClassVar[str] = "policy"
    model: str
    target: str
    blocks: list[BlockChoice]
    predicted_latency_ms: float | None = None
    latency_kind: str = "measured"
    notes: dict = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @property
    def widths(self) -> list[int]:
        return [b.width for b in self.blocks]

    @property
    def precisions(self) -> list[str]:
        return [b.precision for b in self.blocks]

    @classmethod
    def from_lists(cls, model: str, target: str, names: Sequence[str], widths: Sequence[int],
                   precisions: Sequence[str], **kwargs) -> "Policy":
        """Build a policy from parallel lists of block names, widths and precisions."""
        return cls(model, target, [BlockChoice(n, int(w), p) for n, w, p in zip(names, widths, precisions)],
                   **kwargs)

    def check_against(self, block_names: Sequence[str], full_widths: Sequence[int], precisions: Sequence[str],
                      source: str = "policy", removable: Sequence[bool] | None = None) -> None:
        """Refuse a policy whose blocks, widths or precisions do not fit the model and target.

        Width 0 (the block's residual branch removed) is accepted for the blocks ``removable`` marks.
        """
        if [b.name for b in self.blocks] != list(block_names):
            raise InputError(f"{source}: blocks do not match model {self.model} "
                             f"({len(self.blocks)} in policy, {len(block_names)} in model)")
        removable = removable or [False] * len(self.blocks)
        for b, full, can_remove in zip(self.blocks, full_widths, removable):
            if b.width == 0 and can_remove:
                continue
            if not 1 <= b.width <= full:
                raise InputError(f"{source}: block {b.name} width {b.width} outside "
                                 f"{'0' if can_remove else '1'}..{full}")
            if b.precision not in precisions:
                raise InputError(f"{source}: block {b.name} precision '{b.precision}' not offered by the target "
                                 f"({', '.join(precisions)})")


def load_policy(path: Path) -> Policy:
    """Read a policy JSON file with clear errors naming the file."""
    return Policy.load(path)
