"""Knowledge-distillation fine-tuning of a compressed student from the uncompressed teacher, and how long it runs
(``--finetune-epochs N|auto``, ``--finetune-minutes M``)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..compute import device_of, grad_scaler, to_device, training_autocast
from ..errors import InputError

AUTO = "auto"
AUTO_MIN_EPOCHS, AUTO_MAX_EPOCHS = 1, 8
# Steps timed before a --finetune-minutes cap re-plans the schedule; the first one (allocations, lazy
# initialisation, the first batch decoded) is left out of the estimate.
PROBE_STEPS = 4


@dataclass(frozen=True)
class DistillConfig:
    """Loss = alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE; SGD with a cosine schedule.

    ``epochs`` is a number or ``"auto"`` (resolved from the policy by ``pipeline.plan_finetune``);
    ``max_minutes`` caps the fine-tune's wall time (``distill``); ``fake_quant`` trains the policy's INT8 blocks
    with ONNX Runtime's quantization simulated (``apply/fake_quant.py``; nothing to do without INT8 blocks).
    """

    epochs: float | str = 1.0
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    temperature: float = 4.0
    alpha: float = 0.9
    max_minutes: float | None = None
    fake_quant: bool = True


@dataclass(frozen=True)
class DistillRun:
    """What a fine-tune did: steps planned from the epochs, steps run, the time per step measured when a cap
    was given, whether the cap cut the schedule, and the learning rate left at the end (0: the cosine ended)."""

    steps_planned: int
    steps: int
    seconds_per_step: float | None
    capped: bool
    final_lr: float

    def to_dict(self) -> dict:
        return {"steps_planned": self.steps_planned, "steps": self.steps,
                "seconds_per_step": self.seconds_per_step, "capped": self.capped}


def parse_epochs(value: float | str, flag: str = "--finetune-epochs") -> float | str:
    """``value`` as a number of epochs (>= 0) or ``"auto"``; InputError naming ``flag`` otherwise."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    try:
        epochs = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{flag}: expected a number of epochs or 'auto', got '{value}'") from None
    if not math.isfinite(epochs) or epochs < 0:
        raise InputError(f"{flag}: must be a non-negative number or 'auto', got '{value}'")
    return epochs


def check_minutes(value: float | None, flag: str = "--finetune-minutes") -> float | None:
    """``value`` if it is None or a positive number of minutes; InputError naming ``flag`` otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise InputError(f"{flag}: must be a positive number of minutes, got {value}")
    return float(value)


def auto_epochs(params_removed: float, int8_fraction: float) -> int:
    """Distillation epochs for ``--finetune-epochs auto``:
    ``clamp(ceil(8 * params_removed + 2 * int8_fraction), 1, 8)``.

    ``params_removed`` is the fraction of the uncompressed model's parameters the policy removes, and
    ``int8_fraction`` the fraction of blocks it runs in INT8. Why: the student starts from the teacher's weights,
    and what distillation has to recover grows with what was cut away; removing capacity is the main damage
    (a 0.7x-latency policy typically removes a quarter of the parameters: 2-3 epochs; a 0.25x one two thirds or
    more: 6-8), quantization noise a smaller one the student adapts to in a couple of epochs of quantization-aware
    training. One epoch is the floor (BatchNorm recalibration alone leaves accuracy on the table) and eight the
    ceiling (past that the short recipe gains little on 10,000 images). The rule is monotone non-decreasing in
    both fractions, so a more compressed policy never gets fewer epochs.
    """
    raw = 8.0 * min(max(params_removed, 0.0), 1.0) + 2.0 * min(max(int8_fraction, 0.0), 1.0)
    return int(min(AUTO_MAX_EPOCHS, max(AUTO_MIN_EPOCHS, math.ceil(raw - 1e-9))))


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      temperature: float, alpha: float) -> torch.Tensor:
    """Hinton et al.'s distillation loss: softened KL scaled by T^2 plus hard-label cross-entropy."""
    t = temperature
    soft = F.kl_div(F.log_softmax(student_logits / t, dim=1), F.softmax(teacher_logits / t, dim=1),
                    reduction="batchmean") * t * t
    return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)


def capped_steps(planned: int, done: int, elapsed_s: float, per_step_s: float, max_minutes: float) -> int:
    """The steps a fine-tune may take in all when ``done`` steps took ``elapsed_s`` and each further one takes
    ``per_step_s``: at most ``planned``, never fewer than ``done``."""
    left = max_minutes * 60.0 - elapsed_s
    more = int(left // per_step_s) if per_step_s > 0 else planned
    return max(done, min(planned, done + max(0, more)))


def distill(student: nn.Module, teacher: nn.Module, make_batches: Callable[[], Iterable], steps_per_epoch: int,
            config: DistillConfig, on_step: Callable[[float], None] | None = None,
            clock: Callable[[], float] = time.monotonic) -> DistillRun:
    """Fine-tune ``student`` (in place) for ``config.epochs`` epochs (fractions allowed) of ``make_batches()``.

    ``make_batches`` returns a fresh iterator of (images, labels) per epoch; ``on_step`` gets the loss.
    BatchNorm statistics keep updating (train mode); the teacher stays in eval mode. Batches go to the
    student's device; on CUDA the forward passes run in float16 autocast with loss scaling.

    With ``config.max_minutes``, the time per step is measured over the first ``PROBE_STEPS`` steps (``clock``)
    and the step count cut once to what fits the cap; the cosine schedule is a closed form of the step count, so
    re-planned it still ends at a learning rate of zero instead of stopping in the middle.
    """
    if config.epochs == AUTO:
        raise ValueError("distill: resolve epochs 'auto' first (pipeline.plan_finetune)")
    planned = max(1, math.ceil(float(config.epochs) * steps_per_epoch))
    if float(config.epochs) <= 0:
        student.eval()
        return DistillRun(0, 0, None, False, config.lr)
    teacher.eval()
    optimizer = torch.optim.SGD(student.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay, nesterov=True)
    plan = {"total": planned}
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda k: 0.5 * (1 + math.cos(math.pi * min(k, plan["total"]) / plan["total"])))
    device = device_of(student)
    scaler = grad_scaler(device)
    step, per_step, started, after_first = 0, None, clock(), 0.0
    student.train()
    while step < plan["total"]:
        for images, labels in make_batches():
            images, labels = to_device(images, device), to_device(labels, device)
            with training_autocast(device):
                with torch.no_grad():
                    target = teacher(images)
                loss = distillation_loss(student(images), target, labels, config.temperature, config.alpha)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            step += 1
            if config.max_minutes is not None and step == 1:
                after_first = clock()
            elif config.max_minutes is not None and step == min(PROBE_STEPS, planned) and per_step is None:
                now = clock()
                per_step = (now - after_first) / (step - 1)
                plan["total"] = capped_steps(planned, step, now - started, per_step, config.max_minutes)
            schedule.step()
            if on_step:
                on_step(float(loss.detach()))
            if step >= plan["total"]:
                break
    student.eval()
    return DistillRun(planned, step, per_step, plan["total"] < planned, float(optimizer.param_groups[0]["lr"]))
