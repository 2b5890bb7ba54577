"""Write a deployable artifact: the compressed model as ONNX, INT8 where the policy says, checked and described."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..errors import HirelcError
from ..models import ModelSpec
from ..policy import Policy
from ..precision import Precision
from ..runtime.onnxruntime import reference_outputs
from .manifest import Manifest, file_entry, model_ref_of
from .onnx_export import export_onnx
from .ort_int8 import quantize_blocks
from .quant_check import quantized_blocks

MODEL_NAME = "model.onnx"
BASELINE_NAME = "baseline_fp32.onnx"


class ExportCheckError(HirelcError):
    """The exported graph does not behave like the PyTorch model or does not run the precisions asked for."""


def torch_outputs(model: nn.Module, batches: Sequence[np.ndarray]) -> np.ndarray:
    """PyTorch's logits for the check batches: what every export is compared with."""
    with torch.no_grad():
        return torch.cat([model(torch.from_numpy(b)) for b in batches]).numpy()


def check_fp32(exported: np.ndarray, reference: np.ndarray, where: Path) -> dict:
    """The FP32 graph's max abs error and the logit scale; ExportCheckError beyond 1e-3 of the scale."""
    scale = float(np.abs(reference).max()) or 1.0
    error = float(np.abs(exported - reference).max())
    if error > 1e-3 * scale:
        raise ExportCheckError(f"{where}: FP32 ONNX differs from PyTorch by {error:.3g} (logit scale {scale:.3g})")
    return {"fp32_max_abs_error": error, "logit_scale": scale}


def deviation(final: np.ndarray, reference: np.ndarray) -> dict:
    """How the final (reduced-precision) graph deviates from PyTorch: reported, not hidden."""
    return {"final_max_abs_error": float(np.abs(final - reference).max()),
            "final_top1_agreement_with_torch": float(np.mean(final.argmax(1) == reference.argmax(1))),
            "check_images": len(reference)}


def write_artifact(model: nn.Module, teacher: nn.Module, spec: ModelSpec, policy: Policy,
                   input_shape: Sequence[int], calibration: Sequence[np.ndarray], check_batches: Sequence[np.ndarray],
                   out_dir: Path, table_fingerprint: dict, finetune: dict) -> Manifest:
    """Export ``model`` (already pruned and fine-tuned) to ``out_dir/model.onnx`` with the policy's INT8 blocks.

    Also writes the uncompressed ``teacher`` as ``baseline_fp32.onnx`` (what ``hirelc bench --baseline`` compares
    against) and ``manifest.json``. Checks: the FP32 graph matches PyTorch (max abs error <= 1e-3 of the logit
    range, else ExportCheckError), every INT8 block runs quantized kernels in ONNX Runtime's optimised graph
    and no FP32 block does (else ExportCheckError); the INT8 deviation from PyTorch is reported, not hidden.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    blocks = spec.blocks()
    prefixes = [b.onnx_prefix for b in blocks]
    int8 = [p for p, choice in zip(prefixes, policy.blocks) if choice.precision == Precision.INT8 and choice.width > 0]
    reference = torch_outputs(model, check_batches)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(model, tuple(input_shape), Path(tmp) / "fp32.onnx")
        fp32_check = check_fp32(reference_outputs(fp32, check_batches), reference, out_dir)
        quantize_blocks(fp32, out_dir / MODEL_NAME, int8, calibration)
    export_onnx(teacher, tuple(input_shape), out_dir / BASELINE_NAME)
    kernels = quantized_blocks(out_dir / MODEL_NAME, prefixes)
    # A removed block's shortcut (a projection convolution) is no choice of the policy: ONNX Runtime may fuse it
    # into the quantized kernels of its INT8 neighbours, which is fine; only kept blocks are checked.
    wrong = [b.name for b, p, choice in zip(blocks, prefixes, policy.blocks)
             if choice.width > 0 and bool(kernels[p]) != (p in int8)]
    if wrong:
        raise ExportCheckError(f"{out_dir / MODEL_NAME}: blocks not running the precision the policy asks for: "
                               f"{', '.join(wrong)}")
    final = reference_outputs(out_dir / MODEL_NAME, check_batches)
    manifest = Manifest(
        model=policy.model,
        model_ref=model_ref_of(spec),
        target=policy.target,
        policy=policy.to_dict(),
        predicted_latency_ms=policy.predicted_latency_ms,
        latency_kind=policy.latency_kind,
        table_fingerprint=table_fingerprint,
        files={name: file_entry(out_dir / name) for name in (MODEL_NAME, BASELINE_NAME)},
        quantized_blocks={b.name: kernels[p] for b, p in zip(blocks, prefixes)},
        checks={**fp32_check, **deviation(final, reference)},
        finetune=finetune,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )
    manifest.write(out_dir)
    return manifest
