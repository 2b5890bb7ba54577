"""Knowledge-distillation fine-tuning of a compressed student from the uncompressed teacher."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..compute import device_of, grad_scaler, to_device, training_autocast


@dataclass(frozen=True)
class DistillConfig:
    """Loss = alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE; SGD with a cosine schedule."""

    epochs: float = 1.0
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    temperature: float = 4.0
    alpha: float = 0.9


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      temperature: float, alpha: float) -> torch.Tensor:
    """Hinton et al.'s distillation loss: softened KL scaled by T^2 plus hard-label cross-entropy."""
    t = temperature
    soft = F.kl_div(F.log_softmax(student_logits / t, dim=1), F.softmax(teacher_logits / t, dim=1),
                    reduction="batchmean") * t * t
    return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)


def distill(student: nn.Module, teacher: nn.Module, make_batches: Callable[[], Iterable], steps_per_epoch: int,
            config: DistillConfig, on_step: Callable[[float], None] | None = None) -> nn.Module:
    """Fine-tune ``student`` for ``config.epochs`` epochs (fractions allowed) of ``make_batches()``.

    ``make_batches`` returns a fresh iterator of (images, labels) per epoch; ``on_step`` gets the loss.
    BatchNorm statistics keep updating (train mode); the teacher stays in eval mode. Batches go to the
    student's device; on CUDA the forward passes run in float16 autocast with loss scaling.
    """
    total = max(1, math.ceil(config.epochs * steps_per_epoch))
    if config.epochs <= 0:
        return student.eval()
    teacher.eval()
    optimizer = torch.optim.SGD(student.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay, nesterov=True)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    device = device_of(student)
    scaler = grad_scaler(device)
    step = 0
    student.train()
    while step < total:
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
            schedule.step()
            step += 1
            if on_step:
                on_step(float(loss.detach()))
            if step >= total:
                break
    return student.eval()
