"""Where a long job reports progress: phases with an expected number of steps, steps, and messages.

The library never draws anything itself: the CLI hands a ``Reporter`` that draws rich progress bars, Python
callers may hand their own, and the default reports nothing.
"""

from __future__ import annotations

from typing import Callable, Protocol


class Reporter(Protocol):
    """Progress of a job: ``phase`` starts a bar of ``total`` steps (None = unknown length)."""

    def phase(self, name: str, total: int | None = None) -> None: ...

    def advance(self, steps: int = 1, detail: str | None = None) -> None: ...

    def note(self, message: str) -> None: ...


class SilentReporter:
    """A Reporter that reports nothing."""

    def phase(self, name: str, total: int | None = None) -> None:
        pass

    def advance(self, steps: int = 1, detail: str | None = None) -> None:
        pass

    def note(self, message: str) -> None:
        pass


def steps_of(reporter: Reporter) -> Callable[..., None]:
    """The ``(detail, steps)`` callback the measuring code takes, advancing ``reporter``."""
    return lambda detail="", steps=1: reporter.advance(steps, detail or None)
