"""A compress run's stages as the user and a later reader see them: the progress phase, ``run.log`` and
``status.json`` (which says where a run stopped)."""

from __future__ import annotations

import logging

from ..progress import Reporter
from ..records import Status
from ..runs import RunDirectory, RunFiles, Stage, now

log = logging.getLogger(__name__)


class Stages:
    """Announces each stage to the reporter, the log and ``status.json`` (which says where a run stopped)."""

    def __init__(self, run: RunDirectory, reporter: Reporter):
        self.run, self.reporter, self.name = run, reporter, ""

    def start(self, stage: Stage, total: int | None = None, detail: str = "") -> None:
        self.name = stage.name
        self.reporter.phase(stage.name + (f" ({detail})" if detail else ""), total)
        log.info("stage: %s%s", stage.name, f" ({detail})" if detail else "")
        self._status("running")

    def reused(self, record: str) -> bool:
        """Whether ``record`` exists from before (a resumed run), saying so when it does."""
        if self.run.has(record):
            self.reporter.note(f"{self.name}: reusing {record} from the run directory")
            log.info("%s: reusing %s", self.name, record)
            return True
        return False

    def failed(self, error: BaseException) -> None:
        self._status("failed", str(error))

    def finished(self) -> None:
        self._status("complete")

    def _status(self, state: str, error: str | None = None) -> None:
        Status(state, self.name, now(), error).save(self.run.path(RunFiles.STATUS))
