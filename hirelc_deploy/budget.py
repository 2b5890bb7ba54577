"""Latency budgets: parsed once from ``--latency-budget``, resolved once against a measured uncompressed latency.

A budget is an absolute time (``0.6ms``, ``600us``) or a fraction of the uncompressed model (``0.5x``). A fraction
is always of the uncompressed FP32 model timed *in the same session* as what it judges, because this machine
runs 20% faster or slower from one minute to the next and only latencies timed side by side compare:

* the search: against the uncompressed model measured when the run starts (``Budget.resolve``);
* the finalists: against the uncompressed model timed interleaved with them;
* the verdict: against the uncompressed model timed interleaved with the exported engine, in the same fresh
  processes (a TensorRT run without a GPU: against the table's prediction, and the verdict says PREDICTED).

The search works in the units of its (calibrated) table: ``ResolvedBudget.table_ms`` is the budget divided by
the drift, the ratio of the measured to the predicted uncompressed latency, so a table profiled while the machine
ran a little faster or slower than now still asks the search for the right thing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InputError

FLAG = "--latency-budget"
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|us|µs|x)\s*$")


@dataclass(frozen=True)
class Budget:
    """A parsed ``--latency-budget``: ``value`` milliseconds, or ``value`` times the uncompressed latency."""

    value: float
    relative: bool
    text: str

    def ms_against(self, uncompressed_ms: float) -> float:
        """The budget in milliseconds next to an uncompressed latency timed in the same session."""
        return self.value * uncompressed_ms if self.relative else self.value

    def resolve(self, uncompressed_ms: float, table_uncompressed_ms: float, table_fastest_ms: float,
                how: str = "measured") -> "ResolvedBudget":
        """The budget against the uncompressed model's latency on the device (``how``: measured, or predicted
        by the table), in device ms and table units; a budget no configuration can meet, or one with nothing to
        compress, is the one-line error naming the flag."""
        resolved = ResolvedBudget(self, uncompressed_ms, table_uncompressed_ms)
        fastest_ms = table_fastest_ms * resolved.drift
        if resolved.ms < fastest_ms:
            raise InputError(f"{FLAG} {self.text}: {resolved.ms:.4f} ms is below the fastest configuration the "
                             f"table allows, {fastest_ms:.4f} ms ({fastest_ms / uncompressed_ms:.3f}x of the "
                             f"uncompressed model's {how} {uncompressed_ms:.4f} ms)")
        if resolved.ms >= uncompressed_ms:
            raise InputError(f"{FLAG} {self.text}: {resolved.ms:.4f} ms is not below the uncompressed model's {how} "
                             f"{uncompressed_ms:.4f} ms: there is nothing to compress")
        return resolved


@dataclass(frozen=True)
class ResolvedBudget:
    """A budget against one uncompressed latency on the device and the table's prediction of it."""

    budget: Budget
    uncompressed_ms: float  # on the device: measured (or, planning without the device, predicted)
    table_uncompressed_ms: float  # the table's prediction of the same model

    @property
    def drift(self) -> float:
        """Device ms per table unit: measured over predicted uncompressed latency."""
        return self.uncompressed_ms / self.table_uncompressed_ms

    @property
    def ms(self) -> float:
        """The budget in device milliseconds."""
        return self.budget.ms_against(self.uncompressed_ms)

    @property
    def table_ms(self) -> float:
        """The budget in the table's units: what the search is asked to stay under."""
        return self.ms / self.drift


def parse_budget(text: str, flag: str = FLAG) -> Budget:
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
