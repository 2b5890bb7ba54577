"""Test doubles that Ray workers import (the repository root is on their path): an evaluator whose worker dies."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from hirelc_deploy.search.evaluate import Evaluator


class DyingEvaluator(Evaluator):
    """Kills the worker process running its first evaluation (``kill -9`` from inside), once: ``marker`` records
    that it happened, so Ray's retry of the task evaluates normally."""

    def __init__(self, shared: Evaluator, marker: Path, executor):
        super().__init__(shared.teacher, shared.blocks, shared.input_shape, shared.data, shared.sensitivity,
                         cache={}, executor=executor)
        self.marker = Path(marker)

    def compute(self, widths, precisions):
        if not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return super().compute(widths, precisions)
