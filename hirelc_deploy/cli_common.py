"""What every ``hirelc`` command shares: the ``--json`` flag, JSON output, and progress bars on stderr."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True)  # progress, tables and notes: stdout stays clean for --json
state = {"debug": False, "quiet": False}


def json_option():
    """The ``--json`` flag every command takes."""
    return typer.Option(False, "--json", help="Print the result as JSON on stdout (progress and tables go to "
                        "stderr or are left out), for scripts.")


def emit(obj) -> None:
    """The machine-readable result of a command on stdout."""
    print(json.dumps(obj, indent=2, default=str))


class RichReporter:
    """A ``progress.Reporter`` drawing one rich bar per phase (a spinner where the length is unknown)."""

    def __init__(self, bar: Progress):
        self.bar, self.task, self.name = bar, None, ""

    def phase(self, name: str, total: int | None = None) -> None:
        if self.task is not None:
            done = self.bar.tasks[self.task].total or 1
            self.bar.update(self.task, completed=done, total=done)
        self.task, self.name = self.bar.add_task(name, total=total), name

    def advance(self, steps: int = 1, detail: str | None = None) -> None:
        if self.task is not None:
            self.bar.update(self.task, advance=steps,
                            description=f"{self.name}: {detail}" if detail else self.name)

    def note(self, message: str) -> None:
        if not state["quiet"]:
            self.bar.console.print(message)


def progress_bars() -> Progress:
    """The progress display every command uses (on stderr, so --json output stays clean)."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, disable=state["quiet"])
