"""How long the final fine-tune runs: ``--finetune-epochs auto`` grows with the compression, ``--finetune-minutes``
cuts the step count (the cosine schedule re-planned to end at zero), and bad values are one-line errors."""

from __future__ import annotations

import copy

import pytest
import torch

from hirelc_deploy.apply import AUTO, DistillConfig, auto_epochs, check_minutes, distill, parse_epochs
from hirelc_deploy.apply.finetune import PROBE_STEPS
from hirelc_deploy.errors import InputError
from hirelc_deploy.models import get_model_spec
from hirelc_deploy.pipeline import plan_finetune
from hirelc_deploy.policy import Policy
from tests.conftest import fails, hirelc


def _policy(spec, fraction: float, int8_blocks: int, removed: int = 0) -> Policy:
    """Every block at ``fraction`` of its width, the first ``int8_blocks`` in INT8, the last ``removed``
    removable blocks removed."""
    blocks = spec.blocks()
    widths = [max(1, round(b.full_width * fraction)) for b in blocks]
    removable = [i for i, b in enumerate(blocks) if b.removable][::-1][:removed]
    for i in removable:
        widths[i] = 0
    precisions = ["int8" if i < int8_blocks and widths[i] else "fp32" for i in range(len(blocks))]
    return Policy.from_lists(spec.name, "cpu-ort-1t", [b.name for b in blocks], widths, precisions)


def test_auto_epochs_grow_with_the_compression():
    spec = get_model_spec("resnet20")
    n = len(spec.blocks())
    light = _policy(spec, 0.875, 0)  # about 0.7x of the latency
    ladder = [_policy(spec, 1.0, 0), light, _policy(spec, 0.75, 2), _policy(spec, 0.5, n // 2),
              _policy(spec, 0.5, n, removed=2), _policy(spec, 0.25, n, removed=4)]
    epochs = [plan_finetune(spec, policy, AUTO).epochs for policy in ladder]
    assert epochs == sorted(epochs), epochs
    assert epochs[-1] > plan_finetune(spec, light, AUTO).epochs
    assert 1 <= epochs[0] and epochs[-1] <= 8
    plan = plan_finetune(spec, ladder[-1], AUTO)
    assert plan.requested == AUTO and "parameters removed" in plan.reason
    assert plan_finetune(spec, ladder[-1], 2.5).epochs == 2.5  # a number is taken as it is


def test_auto_rule_is_monotone_with_a_floor_and_a_ceiling():
    grid = [i / 20 for i in range(21)]
    for q in grid:
        row = [auto_epochs(p, q) for p in grid]
        assert row == sorted(row)
    for p in grid:
        column = [auto_epochs(p, q) for q in grid]
        assert column == sorted(column)
    assert auto_epochs(0.0, 0.0) == 1 and auto_epochs(1.0, 1.0) == 8


def _tiny_problem():
    torch.manual_seed(0)
    teacher = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                  torch.nn.Flatten(), torch.nn.Linear(4, 10)).eval()
    batches = [(torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,))) for _ in range(10)]
    return teacher, copy.deepcopy(teacher), lambda: iter(batches)


def test_no_cap_runs_every_planned_step_and_the_schedule_ends_at_zero():
    teacher, student, batches = _tiny_problem()
    run = distill(student, teacher, batches, 10, DistillConfig(epochs=3))
    assert run.steps == run.steps_planned == 30 and not run.capped and run.seconds_per_step is None
    assert run.final_lr == pytest.approx(0.0, abs=1e-12)


def test_an_absurdly_small_cap_stops_after_the_timed_steps_with_the_schedule_ended():
    teacher, student, batches = _tiny_problem()
    run = distill(student, teacher, batches, 10, DistillConfig(epochs=3, max_minutes=1e-9))
    assert run.capped and run.steps == PROBE_STEPS < run.steps_planned
    assert run.final_lr == pytest.approx(0.0, abs=1e-12)


def test_the_cap_fits_the_steps_to_the_measured_time_per_step():
    teacher, student, batches = _tiny_problem()
    ticks = iter(range(1000))
    # The fake clock advances one second per reading: read at the start (0), after the first step (1) and after
    # the probe (2), so a step takes (2 - 1) / (PROBE_STEPS - 1) s and 2 s of the 6 s cap are spent.
    run = distill(student, teacher, batches, 10, DistillConfig(epochs=5, max_minutes=0.1),
                  clock=lambda: float(next(ticks)))
    per_step = 1 / (PROBE_STEPS - 1)
    assert run.seconds_per_step == pytest.approx(per_step)
    assert run.steps == PROBE_STEPS + int((6 - 2) // per_step) and run.steps < run.steps_planned == 50
    assert run.capped and run.final_lr == pytest.approx(0.0, abs=1e-12)


def test_bad_values_are_refused_by_name():
    assert parse_epochs("auto") == AUTO and parse_epochs("AUTO") == AUTO and parse_epochs("0.5") == 0.5
    for bad in ("abc", "-1", "nan", ""):
        with pytest.raises(InputError, match="--finetune-epochs"):
            parse_epochs(bad)
    assert check_minutes(None) is None and check_minutes(2) == 2.0
    for bad in (0, -1.0, float("inf")):
        with pytest.raises(InputError, match="--finetune-minutes"):
            check_minutes(bad)


COMPRESS = ["compress", "--model", "resnet20", "--weights", "w.th", "--data", "d", "--target", "cpu-ort-1t",
            "--latency-budget", "0.5x"]
EXPORT = ["export", "--model", "resnet20", "--weights", "w.th", "--data", "d", "--target", "cpu-ort-1t",
          "--policy", "p.json", "--out", "o"]


def test_cli_passes_auto_and_the_cap_to_the_library(monkeypatch, capsys):
    import hirelc_deploy.jobs.compress as compress_job
    import hirelc_deploy.jobs.export as export_job

    seen = {}

    def capture(*_args, **kwargs):
        seen.update(kwargs)
        raise SystemExit(0)

    monkeypatch.setattr(compress_job, "compress", capture)
    code, _, err = hirelc(monkeypatch, capsys, *COMPRESS, "--finetune-epochs", "auto", "--finetune-minutes", "5",
                          "--no-qat")
    assert code == 0, err
    assert seen["finetune_epochs"] == AUTO and seen["finetune_minutes"] == 5.0 and seen["qat"] is False
    seen.clear()
    monkeypatch.setattr(export_job, "export", capture)
    code, _, err = hirelc(monkeypatch, capsys, *EXPORT, "--finetune-epochs", "auto")
    assert code == 0, err
    assert seen["finetune_epochs"] == "auto" and seen["finetune_minutes"] is None and seen["qat"] is True


@pytest.mark.parametrize("command", [COMPRESS, EXPORT], ids=["compress", "export"])
def test_cli_refuses_garbage_in_one_line(monkeypatch, capsys, command):
    assert "--finetune-epochs" in fails(monkeypatch, capsys, *command, "--finetune-epochs", "abc")
    assert "--finetune-minutes" in fails(monkeypatch, capsys, *command, "--finetune-minutes", "-2")
