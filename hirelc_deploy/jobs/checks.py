"""``compress --check-targets B,C``: the chosen policy checked against other targets' budgets.

The search, the finalists and the run's own verdict are the ``--target``'s. Afterwards the fine-tuned student is
written once more per other target (its batch size, its backend's graph and quantization, under
``checks/TARGET/``) and timed on that target's device against that target's uncompressed model, by the same
rule as the verdict (fresh processes, fast state; ``verdict.py``), through the device's lease when the executor
is Ray. The budget is the run's: a fraction is of each target's own uncompressed model, an absolute budget the
same milliseconds everywhere. Each target gets its own verdict in ``checks.json``, the report and the CLI.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from torch import nn

from ..budget import Budget
from ..devices import leased_backend
from ..errors import InputError
from ..models import ModelSpec
from ..pipeline import DataConfig, PreparedData, write_for_target
from ..policy import Policy
from ..records import TargetCheck, TargetChecks
from ..targets import Target, backend_of, current_fingerprint, load_target
from ..verdict import judge, measure_final, verdict_processes

log = logging.getLogger(__name__)


def load_check_targets(names: list[str], primary: Target) -> list[Target]:
    """The targets of ``--check-targets``, refused (one line) when one cannot be measured from here or repeats."""
    targets = []
    for name in names:
        target = load_target(name)
        if target.name == primary.name or target.name in {t.name for t in targets}:
            raise InputError(f"--check-targets: {target.name} is given twice (or is the --target)")
        reason = backend_of(target).unavailable()
        if reason:
            raise InputError(f"--check-targets: {target.name} cannot be measured from this machine: {reason}")
        targets.append(target)
    return targets


def check_targets(student: nn.Module, teacher: nn.Module, spec: ModelSpec, policy: Policy, targets: list[Target],
                  budget: Budget, data: PreparedData, data_config: DataConfig, finetune: dict, out: Path, ray,
                  on_round: Callable[[], None] | None = None) -> TargetChecks:
    """Write and time ``student`` (the run's fine-tuned model, on the CPU) for each target; each against ``budget``."""
    checks = []
    for target in targets:
        backend = leased_backend(backend_of(target), target, ray)
        artifacts = out / target.name
        write_for_target(student, teacher, spec, policy, target, data, data_config, artifacts,
                         current_fingerprint(target).to_dict(), finetune)
        latency = measure_final(lambda: backend.time_export(artifacts, target),
                                backend.time_export(artifacts, target), verdict_processes(backend, target), on_round)
        budget_ms, ratio, text = judge(budget, latency)
        log.info("check on %s: %.4f ms against a budget of %.4f ms: %s", target.name, latency.engine_ms, budget_ms,
                 text)
        checks.append(TargetCheck(target.name, backend.measured_on(target), target.batch_size, budget_ms, ratio,
                                  text, latency))
    return TargetChecks(budget.text, checks)
