"""``hirelc export`` as a library call: apply a policy for real, fine-tune by distillation, and write the
deployable artifact of the target's backend with its manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..apply import DistillConfig, check_minutes, parse_epochs
from ..errors import InputError
from ..artifacts.manifest import Manifest
from ..latency.table import default_table_path, load_table
from ..models import ModelSpec, as_spec
from ..compute import resolve_device
from ..records import DataOptions, ModelRef
from ..pipeline import (
    DataConfig,
    check_policy,
    check_sparse_blocks,
    export_policy,
    finetune_image_count,
    finetune_note,
    load_model,
    plan_finetune,
    prepare_data,
    sensitivity_of,
)
from ..policy import Policy, load_policy
from ..progress import Reporter, SilentReporter, steps_of
from ..runs import RunFiles
from ..settings import tables_dir
from ..targets import Target, current_fingerprint, load_target

CRITERIA = ("fisher", "l1")


def export(model: str | ModelRef, weights: Path, data: Path, target: str | Target, policy: Path | Policy, out: Path, *,
           finetune_epochs: float | str = 1.0, finetune_images: int = 10_000, finetune_minutes: float | None = None,
           qat: bool = True, lr: float = 0.01, criterion: str = "fisher", table: Path | None = None,
           sparse_2_4: str | Sequence[str] | None = None, seed: int = 0, reporter: Reporter | None = None,
           data_options: DataOptions = DataOptions()) -> Manifest:
    """Apply ``policy`` to the trained ``model`` for real (channels removed, the target's low-precision kernels),
    fine-tune it by distillation on the train split of ``data``, and write ``out``: the artifact of the target's
    backend, the uncompressed baseline, the policy, the sensitivity used and ``manifest.json`` (returned).

    ``sparse_2_4`` gives the convolutions of those blocks (``"all"`` = every kept block) 2:4 structured sparsity,
    on targets that run it. ``finetune_epochs`` is a number or ``"auto"`` (more epochs the more the policy
    compresses: ``pipeline.plan_finetune``), ``finetune_minutes`` caps the fine-tune's wall time (the schedule
    re-planned to fit), ``qat`` trains the INT8 blocks with ONNX Runtime's quantization simulated
    (``apply/fake_quant.py``). ``table`` (default: the stored table of the model on the target, if any) is recorded
    as the source of the policy's prediction and must have been measured on this device. ``data_options`` say how
    images are read and where fine-tuning runs (``--device``).
    """
    reporter = reporter or SilentReporter()
    epochs = parse_epochs(finetune_epochs)
    minutes = check_minutes(finetune_minutes)
    if criterion not in CRITERIA:
        raise InputError(f"--criterion: expected fisher or l1, got '{criterion}'")
    spec = as_spec(model)
    tgt = target if isinstance(target, Target) else load_target(target)
    plan = policy if isinstance(policy, Policy) else load_policy(policy)
    check_policy(spec, plan, tgt)
    sparse_blocks = _sparse_blocks(sparse_2_4, plan)
    check_sparse_blocks(spec, plan, tgt, sparse_blocks)
    fingerprint = _table_fingerprint(table, spec, tgt)
    torch.manual_seed(seed)
    np.random.seed(seed)
    device = resolve_device(data_options.device)
    teacher = load_model(spec, weights).to(device)
    config = DataConfig(seed=seed, train_images=finetune_images, options=data_options)
    prepared = prepare_data(spec, Path(data), config, reporter, device)
    sensitivity = None
    if criterion == "fisher":
        reporter.phase("Fisher sensitivity", config.fisher_images)
        sensitivity = sensitivity_of(teacher, spec, prepared, config, reporter.advance)
    reporter.phase("fine-tuning (images)",
                   finetune_image_count(prepared, config, plan_finetune(spec, plan, epochs).epochs))
    out = Path(out)
    _, manifest = export_policy(teacher, spec, plan, tgt, prepared, config,
                                DistillConfig(epochs=epochs, lr=lr, max_minutes=minutes, fake_quant=qat), out,
                                fingerprint, sensitivity, criterion, steps_of(reporter), sparse_blocks)
    reporter.note(finetune_note(manifest.finetune))
    if sensitivity is not None:
        sensitivity.save(out / RunFiles.SENSITIVITY)
    plan.save(out / RunFiles.POLICY)
    return manifest


def _sparse_blocks(blocks: str | Sequence[str] | None, policy: Policy) -> list[str]:
    """Block names from ``--sparse-2-4`` ('all' = every block the policy keeps; else comma-separated names)."""
    if not blocks:
        return []
    if isinstance(blocks, str):
        if blocks.strip() == "all":
            return [b.name for b in policy.blocks if b.width > 0]
        blocks = blocks.split(",")
    return [name.strip() for name in blocks if name.strip()]


def _table_fingerprint(table: Path | None, spec: ModelSpec, target: Target) -> dict:
    """Fingerprint of the table behind a policy (checked against this device), {} when there is none."""
    path = table or default_table_path(tables_dir(), spec.key, target.name)
    if table is None and not Path(path).exists():
        return {}
    loaded = load_table(path)
    loaded.check_device(current_fingerprint(target), source=str(path))
    return loaded.fingerprint
