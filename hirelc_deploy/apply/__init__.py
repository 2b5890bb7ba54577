"""Applying a policy to a model: physical pruning, 2:4 sparsification, BatchNorm recalibration, distillation
(quantization-aware where the policy runs blocks in INT8)."""

from .finetune import (AUTO, DistillConfig, DistillRun, auto_epochs, check_minutes, distill, distillation_loss,
                       parse_epochs)
from .prune import prune_to_widths, recalibrate_batchnorm
from .sparsity import make_permanent, sparsify

__all__ = ["AUTO", "DistillConfig", "DistillRun", "auto_epochs", "check_minutes", "distill", "distillation_loss",
           "make_permanent", "parse_epochs", "prune_to_widths", "recalibrate_batchnorm", "sparsify"]
