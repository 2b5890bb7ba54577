"""The compression pipeline's stages wired together: data -> sensitivity -> apply a policy -> export through the
target's backend."""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .apply import (AUTO, DistillConfig, auto_epochs, distill, make_permanent, prune_to_widths,
                    recalibrate_batchnorm, sparsify)
from .apply.fake_quant import fake_quantized
from .compute import device_of, resolve_device
from .data import (BadImages, Images, Normalize, Preprocess, check_classes, check_same_classes, open_dataset,
                   read_images, resolve_preprocess, stratified_split)
from .errors import InputError
from .artifacts.manifest import Manifest
from .latency.profile import Progress
from .latency.table import LatencyTable
from .models import ModelSpec, as_spec, load_weights
from .models.shrink import check_widths
from .records import DataOptions, ModelRef
from .policy import Policy
from .precision import Precision
from .progress import Reporter, SilentReporter
from .search import nearest_widths, plan_policy
from .sensitivity import Sensitivity, compute_sensitivity
from .targets import Target, backend_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataConfig:
    """How the train directory is used. The test split is never touched here: held-out = part of train."""

    heldout_fraction: float = 0.1
    seed: int = 0
    train_images: int = 10_000  # fine-tuning, BatchNorm recalibration and INT8 calibration draw from these
    heldout_images: int = 1_000  # Fisher sensitivity and export checks draw from these
    fisher_images: int = 256
    bn_images: int = 512
    calibration_images: int = 256
    batch_size: int = 128
    options: DataOptions = DataOptions()


@dataclass(frozen=True)
class DataPlan:
    """What a run made of ``--data`` and its data options (``config.json`` records it)."""

    train_folder: str
    loading: str  # memory or stream
    loading_reason: str
    preprocess: Preprocess
    workers: int  # DataLoader worker processes (0: decoded in the main process)
    device: str  # where Fisher, evaluation, BatchNorm recalibration and fine-tuning run


@dataclass
class PreparedData:
    """Train and held-out images (decoded or streamed), the normalisation and size the model expects, how they
    are read, and the bad images skipped so far."""

    train: Images
    heldout: Images
    normalize: Normalize
    size: tuple[int, int]
    plan: DataPlan | None = None
    bad: BadImages | None = None

    def train_batches(self, shuffle: bool = False, augment: bool = False, seed: int = 0, batch_size: int = 128):
        return self.train.batches(batch_size, self.normalize, self.size, shuffle, augment, seed)

    def heldout_batches(self, batch_size: int = 128):
        return self.heldout.batches(batch_size, self.normalize, self.size)


def check_dataset(spec: ModelSpec, data: Path, opened: tuple[str, ...] = ("train", "test")) -> None:
    """Before any long work starts: the train and test splits hold the same class folders, and each split of
    ``opened`` opens (no class folder without images) with the model's class count. Listing a big train split
    takes a while: a caller that prepares it right away (``prepare_data`` checks it too) leaves it out."""
    _check_rgb(spec)
    check_same_classes(Path(data), ("train", "test"))
    for split in opened:
        check_classes(open_dataset(data, split), spec.num_classes, data)


def _check_rgb(spec: ModelSpec) -> None:
    """Images are read as RGB: a model taking another channel count can be profiled, not fed our data."""
    if spec.input_shape[0] != 3:
        raise InputError(f"--input-shape {'x'.join(map(str, spec.input_shape))}: images are read as RGB (3 "
                         f"channels), the model takes {spec.input_shape[0]}")


def prepare_data(spec: ModelSpec, data: Path, config: DataConfig, reporter: Reporter | None = None,
                 device: torch.device | None = None) -> PreparedData:
    """Split the train split of ``data`` into train / held-out (stratified by label, seeded, chosen by index
    without decoding) and decode the parts used, or set them up to stream (``data.loading.read_images``).
    ``device`` is where the training-side work will run (CUDA pins the streamed batches)."""
    _check_rgb(spec)
    options = config.options
    dataset = open_dataset(data, "train")
    check_classes(dataset, spec.num_classes, data)
    preprocess = resolve_preprocess(options.preprocess, spec.input_shape, options.resize)
    train_idx, held_idx = stratified_split(dataset.labels, config.heldout_fraction, config.seed)
    rng = np.random.default_rng(config.seed)
    # Kept in seeded random order, not sorted: folders list images class by class, and every "first N images"
    # (BatchNorm recalibration, INT8 calibration, export checks) must be a mix of classes, not one class.
    train_idx = rng.permutation(train_idx)[: config.train_images]
    held_idx = rng.permutation(held_idx)[: config.heldout_images]
    device = device or torch.device("cpu")
    bad = BadImages(options.skip_bad_images)
    loading, (train, heldout) = read_images(dataset, [train_idx, held_idx], preprocess, options.loading,
                                            options.workers, bad, "images", reporter, device.type == "cuda")
    plan = DataPlan(str(getattr(dataset, "root", data)), loading.mode, loading.reason, preprocess, loading.workers,
                    str(device))
    return PreparedData(train, heldout, Normalize(spec.mean, spec.std), spec.input_shape[1:], plan, bad)


def open_test_images(input_shape: Sequence[int], data: Path, options: DataOptions,
                     limit_per_class: int | None = None, bad: BadImages | None = None,
                     reporter: Reporter | None = None) -> Images:
    """The test split of ``data`` (``val/`` where there is no ``test/``), decoded or streamed like the train
    split, under the evaluation view of the recipe for ``input_shape`` (C x H x W)."""
    dataset = open_dataset(data, "test", limit_per_class=limit_per_class)
    preprocess = resolve_preprocess(options.preprocess, input_shape, options.resize)
    _, (test,) = read_images(dataset, [np.arange(len(dataset))], preprocess, options.loading, options.workers,
                             bad or BadImages(options.skip_bad_images), "test images", reporter)
    return test


def load_model(spec: ModelSpec, weights: Path) -> nn.Module:
    """The uncompressed model with its trained weights, in eval mode."""
    return load_weights(spec.build(), Path(weights)).eval()


def sensitivity_of(model: nn.Module, spec: ModelSpec, data: PreparedData, config: DataConfig,
                   on_sample: Callable[[], None] | None = None) -> Sensitivity:
    """Fisher sensitivity on held-out training images."""
    return compute_sensitivity(model, spec.blocks(), spec.input_shape, spec.name, data.heldout_batches(),
                               config.fisher_images, on_sample)


def static_batches(images: Images, data: PreparedData, batch: int, limit: int) -> list[np.ndarray]:
    """Normalised arrays of exactly ``batch`` images each (exported graphs have a static batch)."""
    subset = images.subset(range(min(limit, len(images))))
    # A batch that lost a skipped bad image is left out rather than padded.
    out = [x.numpy() for x, _ in subset.batches(batch, data.normalize, data.size, drop_last=True) if len(x) == batch]
    if not out:
        raise InputError(f"need at least {batch} images for a batch of the target, got {len(subset)}")
    return out


def check_policy(spec: ModelSpec, policy: Policy, target: Target) -> None:
    """Refuse, before any work, a policy written for another model or target or that does not fit them."""
    blocks = spec.blocks()
    if policy.model != spec.name:
        raise InputError(f"--policy: written for model {policy.model}, not {spec.name}")
    if policy.target != target.name:
        raise InputError(f"--policy: written for target {policy.target}, not {target.name}")
    policy.check_against([b.name for b in blocks], [b.full_width for b in blocks], target.precisions, "--policy",
                         [b.removable for b in blocks])
    try:
        check_widths(blocks, policy.widths)
    except ValueError as exc:
        raise InputError(f"--policy: {exc}") from None


@dataclass(frozen=True)
class FinetunePlan:
    """How many epochs the final fine-tune runs: what was asked (a number or ``auto``), what it resolved to, and
    why."""

    requested: float | str
    epochs: float
    reason: str


def _parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def plan_finetune(spec: ModelSpec, policy: Policy, epochs: float | str) -> FinetunePlan:
    """``epochs`` resolved for ``policy``: a number as it is; ``auto`` by ``apply.auto_epochs`` from the fraction
    of parameters the policy removes (the uncompressed model against the model shrunk to the policy's widths,
    counted on fresh builds, so it is known before any data is read) and the fraction of blocks it runs in INT8."""
    if epochs != AUTO:
        return FinetunePlan(float(epochs), float(epochs), "given")
    removed = 1.0 - _parameters(spec.build(policy.widths)) / max(1, _parameters(spec.build()))
    int8 = sum(b.width > 0 and b.precision == Precision.INT8 for b in policy.blocks) / max(1, len(policy.blocks))
    chosen = auto_epochs(removed, int8)
    return FinetunePlan(AUTO, float(chosen), f"auto: {removed:.0%} of the parameters removed and {int8:.0%} of the "
                        f"blocks INT8 -> ceil(8 x {removed:.2f} + 2 x {int8:.2f}) within 1..8 = {chosen}")


def apply_policy(teacher: nn.Module, spec: ModelSpec, policy: Policy, data: PreparedData, config: DataConfig,
                 distill_config: DistillConfig, sensitivity: Sensitivity | None, criterion: str,
                 progress: Progress | None = None, sparse_blocks: Sequence[str] = ()
                 ) -> tuple[nn.Module, list[str], dict]:
    """A physically pruned, BatchNorm-recalibrated and distillation-fine-tuned copy of ``teacher``, the
    convolutions given the 2:4 pattern (those of ``sparse_blocks``, held through fine-tuning), and what the
    fine-tune did (epochs chosen and why, steps planned and run, the time cap and whether it bit, the fake
    quantization of the INT8 blocks), as the manifest records it."""
    note = progress or (lambda *_: None)
    plan = plan_finetune(spec, policy, distill_config.epochs)
    student = copy.deepcopy(teacher)
    prune_to_widths(student, spec.blocks(), policy.widths, (1, *spec.input_shape), sensitivity, criterion)
    sparse_layers = sparsify(student, [m for b in spec.blocks() if b.name in sparse_blocks for m in b.modules])
    recalibrate_batchnorm(student, (x for x, _ in data.train_batches(augment=True, seed=config.seed)),
                          config.bn_images)
    steps = max(1, len(data.train) // config.batch_size)
    cap = f", capped at {distill_config.max_minutes:g} min" if distill_config.max_minutes is not None else ""
    log.info("fine-tuning: %g epoch(s) of %d steps (%s)%s", plan.epochs, steps, plan.reason, cap)
    int8_blocks = [b for b, choice in zip(spec.blocks(), policy.blocks)
                   if choice.precision == Precision.INT8 and choice.width > 0]
    qat = distill_config.fake_quant and plan.epochs > 0 and bool(int8_blocks)
    with fake_quantized(student, int8_blocks if qat else []) as simulated:
        run = distill(student, teacher,
                      lambda: data.train_batches(shuffle=True, augment=True, seed=config.seed,
                                                 batch_size=config.batch_size),
                      steps, replace(distill_config, epochs=plan.epochs),
                      on_step=lambda loss: note("fine-tuning", config.batch_size))
    log.info("fine-tuning ran %d of %d planned steps%s%s", run.steps, run.steps_planned,
             f" ({run.seconds_per_step:.3g} s/step measured)" if run.seconds_per_step is not None else "",
             (": the time cap cut the schedule" if run.capped else ": within the time cap") if cap else "")
    if qat:
        log.info("quantization-aware fine-tuning: %s", simulated.summary())
    make_permanent(student)
    why_not = ("the policy has no INT8 blocks" if not int8_blocks else "no fine-tuning" if plan.epochs <= 0
               else "switched off (--no-qat, or a runtime whose INT8 it does not simulate)")
    record = {"epochs_chosen": plan.epochs, "epochs_reason": plan.reason, **run.to_dict(),
              "qat": simulated.to_dict() if qat else {"enabled": False, "why": why_not}}
    return student, sparse_layers, record


def finetune_note(finetune: dict) -> str:
    """One line on what the final fine-tune did (the manifest's ``finetune`` record): epochs and why, the steps
    run, the time cap and whether it bit, and the quantization-aware training."""
    cap = finetune.get("max_minutes")
    capped = (f"; capped at {cap:g} min: {'cut' if finetune.get('capped') else 'not reached'}"
              if cap is not None else "")
    qat = finetune.get("qat", {})
    qat_text = (f"QAT on {len(qat.get('blocks', []))} INT8 block(s)" if qat.get("enabled")
                else f"no QAT ({qat.get('why', 'off')})")
    return (f"fine-tuning: {finetune.get('epochs_chosen'):g} epoch(s) ({finetune.get('epochs_reason')}), "
            f"{finetune.get('steps')} of {finetune.get('steps_planned')} steps{capped}; {qat_text}")


def finetune_image_count(data: PreparedData, config: DataConfig, epochs: float) -> int:
    """The images fine-tuning goes through (what its progress counts): its steps times the batch size."""
    return max(1, math.ceil(epochs * max(1, len(data.train) // config.batch_size))) * config.batch_size


def check_sparse_blocks(spec: ModelSpec, policy: Policy, target: Target, blocks: Sequence[str]) -> None:
    """Refuse 2:4 sparsity on a target without it, or on blocks that are unknown or removed by the policy."""
    if blocks and not (target.roofline and target.roofline.sparsity_2_4):
        raise InputError(f"--sparse-2-4: target {target.name} does not run 2:4 structured sparsity")
    widths = {b.name: w for b, w in zip(spec.blocks(), policy.widths)}
    for block in blocks:
        if widths.get(block, 0) == 0:
            raise InputError(f"--sparse-2-4: '{block}' is not a block the policy keeps "
                             f"(blocks: {', '.join(n for n, w in widths.items() if w)})")


def export_policy(teacher: nn.Module, spec: ModelSpec, policy: Policy, target: Target, data: PreparedData,
                  config: DataConfig, distill_config: DistillConfig, out_dir: Path, table_fingerprint: dict,
                  sensitivity: Sensitivity | None = None, criterion: str = "fisher",
                  progress: Progress | None = None, sparse_blocks: Sequence[str] = ()) -> tuple[nn.Module, Manifest]:
    """Apply ``policy`` for real, fine-tune, and write the deployable artifact with its manifest through the
    target's backend (ONNX with ONNX Runtime INT8; the TensorRT-bound graph and, where possible, its engine)."""
    check_policy(spec, policy, target)
    check_sparse_blocks(spec, policy, target, sparse_blocks)
    if not backend_of(target).fake_quant_int8:
        distill_config = replace(distill_config, fake_quant=False)
    student, sparse_layers, tuned = apply_policy(teacher, spec, policy, data, config, distill_config, sensitivity,
                                                 criterion, progress, sparse_blocks)
    finetune = {**asdict(distill_config), **tuned, "train_images": len(data.train), "criterion": criterion,
                "seed": config.seed}
    if device_of(student).type != "cpu":  # graphs are exported and checked from the CPU
        student, teacher = student.cpu(), copy.deepcopy(teacher).cpu()
    manifest = write_for_target(student, teacher, spec, policy, target, data, config, out_dir, table_fingerprint,
                                finetune, sparse_layers)
    return student, manifest


def write_for_target(student: nn.Module, teacher: nn.Module, spec: ModelSpec, policy: Policy, target: Target,
                     data: PreparedData, config: DataConfig, out_dir: Path, table_fingerprint: dict, finetune: dict,
                     sparse_layers=()) -> Manifest:
    """Write the already fine-tuned ``student`` (on the CPU) as ``target``'s artifact: its batch, its backend's
    graph and quantization, calibrated and checked on training and held-out images."""
    shape = (target.batch_size, *spec.input_shape)
    calibration = static_batches(data.train, data, target.batch_size, config.calibration_images)
    checks = static_batches(data.heldout, data, target.batch_size, max(64, target.batch_size))
    with torch.no_grad():
        return backend_of(target).write_artifact(student, teacher, spec, policy, shape, calibration, checks,
                                                  out_dir, table_fingerprint, finetune, sparse_layers)


def measure_sensitivity(model: str | ModelRef, weights: Path, data: Path, samples: int = 256, seed: int = 0,
                        out: Path | None = None, reporter: Reporter | None = None,
                        data_options: DataOptions = DataOptions()) -> Sensitivity:
    """``hirelc sensitivity``: Fisher sensitivity per block of the trained ``model`` on ``samples`` held-out
    training images of ``data`` (never its test split), also written to ``out`` when given."""
    reporter = reporter or SilentReporter()
    spec = as_spec(model)
    device = resolve_device(data_options.device)
    config = DataConfig(seed=seed, train_images=1, heldout_images=samples, fisher_images=samples,
                        options=data_options)
    teacher = load_model(spec, weights).to(device)
    prepared = prepare_data(spec, Path(data), config, reporter, device)
    reporter.phase("Fisher sensitivity", samples)
    sensitivity = sensitivity_of(teacher, spec, prepared, config, reporter.advance)
    if out:
        sensitivity.save(out)
    return sensitivity


def plan_uniform(table: LatencyTable, fraction: float, precision: str) -> Policy:
    """``hirelc plan``: the same inner width fraction and precision in every block, with its predicted latency."""
    if precision not in table.precisions:
        raise InputError(f"--precision: '{precision}' not in the table ({', '.join(table.precisions)})")
    return plan_policy(table, nearest_widths(table, fraction), [precision] * len(table.blocks),
                       planned=f"uniform {fraction} {precision}")
