"""Applying a policy to a model: physical pruning, BatchNorm recalibration, distillation fine-tuning."""

from .finetune import DistillConfig, distill, distillation_loss
from .prune import prune_to_widths, recalibrate_batchnorm

__all__ = ["DistillConfig", "distill", "distillation_loss", "prune_to_widths", "recalibrate_batchnorm"]
