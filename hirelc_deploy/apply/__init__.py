"""Applying a policy to a model: physical pruning, 2:4 sparsification, BatchNorm recalibration, distillation."""

from .finetune import DistillConfig, distill, distillation_loss
from .prune import prune_to_widths, recalibrate_batchnorm
from .sparsity import make_permanent, sparsify

__all__ = ["DistillConfig", "distill", "distillation_loss", "make_permanent", "prune_to_widths",
           "recalibrate_batchnorm", "sparsify"]
