"""Latency budgets: an absolute time (``0.6ms``, ``600us``) or a fraction of the uncompressed model (``0.5x``).

A fraction is of the uncompressed FP32 model's latency *measured* on the target at the start of the run, never
of the table's prediction. The search works in the table's units: the budget is divided by the ratio of the
measured to the predicted uncompressed latency, so a table profiled while the machine ran a little faster or
slower than it does now still asks the search for the right thing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InputError

_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|us|µs|x)\s*$")


@dataclass(frozen=True)
class Budget:
    """A parsed ``--latency-budget``: ``value`` milliseconds, or ``value`` times the uncompressed latency."""

    value: float
    relative: bool
    text: str

    def milliseconds(self, uncompressed_ms: float) -> float:
        """The budget in milliseconds given the measured uncompressed latency."""
        return self.value * uncompressed_ms if self.relative else self.value


def parse_budget(text: str, flag: str = "--latency-budget") -> Budget:
    """Parse ``0.6ms``, ``600us`` or ``0.5x``; anything else is a one-line error naming the flag."""
    match = _PATTERN.match(text or "")
    if not match:
        raise InputError(f"{flag}: expected a time such as 0.6ms / 600us or a fraction such as 0.5x, got '{text}'")
    value, unit = float(match.group(1)), match.group(2)
    if value <= 0:
        raise InputError(f"{flag}: must be positive, got '{text}'")
    if unit == "x":
        if value >= 1:
            raise InputError(f"{flag}: a fraction of the uncompressed latency must be below 1x, got '{text}'")
        return Budget(value, True, text)
    return Budget(value / 1000.0 if unit in ("us", "µs") else value, False, text)
