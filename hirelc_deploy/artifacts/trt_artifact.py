"""Write a TensorRT artifact: the precision-carrying ONNX graph, checked on CPU, and the engine where possible.

On CPU everything about the graph is checked: it validates, its FP32 form matches PyTorch, its Q/DQ and FP16
placement is the one asked for, sparsified weights hold the 2:4 pattern, and its deviation from PyTorch (run by
ONNX Runtime) is reported. The engine (``model.engine``, built with a timing cache, with TensorRT's per-layer
report checked against the policy) needs the ``tensorrt`` package and an NVIDIA GPU; without them the manifest
says the engine was not built, and why.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
from onnx import numpy_helper
from torch import nn

from ..apply.sparsity import follows_2_4
from ..models import ModelSpec
from ..models.naming import onnx_scope
from ..policy import Policy
from ..precision import Precision
from ..runtime.onnxruntime import reference_outputs
from ..runtime.tensorrt import (
    TensorRTError,
    build_engine,
    check_precisions,
    load_layer_info,
    require_tensorrt,
    unchecked_blocks,
)
from .artifact import BASELINE_NAME, MODEL_NAME, ExportCheckError, check_fp32, deviation, torch_outputs
from .manifest import Manifest, file_entry, model_ref_of
from .qdq_check import placement_problems
from .trt_onnx import QUANTIZED, block_precisions, write_trt_onnx

ENGINE_NAME = "model.engine"
BASELINE_ENGINE_NAME = "baseline_fp32.engine"
TIMING_CACHE_NAME = "timing.cache"


def _sparsity_problems(graph: onnx.GraphProto, layers: Sequence[str]) -> list[str]:
    """Masked layers missing from the graph or whose exported weights (quantized or not) lost the 2:4 pattern."""
    weights = {i.name: numpy_helper.to_array(i).astype(np.float32) for i in graph.initializer}
    sources = {name: n for n in graph.node for name in n.output}
    problems = []
    for layer in layers:
        convs = [n for n in graph.node if n.op_type == "Conv" and n.name.startswith(onnx_scope(layer))]
        if not convs:
            problems.append(f"{layer}: masked for 2:4 sparsity but no convolution of it is in the graph")
        for conv in convs:
            name = conv.input[1]
            name = sources[name].input[0] if name in sources else name  # a DequantizeLinear's stored weight
            if not follows_2_4(weights[name]):
                problems.append(f"{conv.name}: weights do not hold the 2:4 pattern")
    return problems


def _build_engines(out_dir: Path, expected: dict[str, str], sparse: bool) -> dict:
    """Build both engines with a shared timing cache and check the layers' precisions; or say why not."""
    try:
        require_tensorrt()
    except TensorRTError as exc:
        return {"built": False, "reason": str(exc)}
    cache = out_dir / TIMING_CACHE_NAME
    build = build_engine(out_dir / MODEL_NAME, out_dir / ENGINE_NAME, cache, sparse_weights=sparse)
    baseline = build_engine(out_dir / BASELINE_NAME, out_dir / BASELINE_ENGINE_NAME, cache)
    layers = load_layer_info(build.layer_info_path)
    problems = check_precisions(layers, expected)
    if problems:
        raise ExportCheckError(f"{out_dir / ENGINE_NAME}: layers not running the precision the policy asks for: "
                               + "; ".join(problems))
    return {"built": True, "tensorrt_version": ".".join(map(str, build.tensorrt_version)),
            "build_s": build.build_seconds, "baseline_build_s": baseline.build_seconds,
            "layer_info": Path(build.layer_info_path).name, "sparse_weights": sparse,
            "unchecked_blocks": unchecked_blocks(layers, expected)}


def write_trt_artifact(model: nn.Module, teacher: nn.Module, spec: ModelSpec, policy: Policy,
                       input_shape: Sequence[int], calibration: Sequence[np.ndarray],
                       check_batches: Sequence[np.ndarray], out_dir: Path, table_fingerprint: dict, finetune: dict,
                       sparse_layers: Sequence[str] = ()) -> Manifest:
    """Export ``model`` (pruned, fine-tuned, 2:4 masks made permanent) for TensorRT into ``out_dir``.

    Writes ``model.onnx`` (each block in the policy's precision), ``baseline_fp32.onnx`` (the uncompressed
    ``teacher``), the engines where TensorRT and a GPU are present, and ``manifest.json`` (written last).
    Raises ExportCheckError when the graph's FP32 form differs from PyTorch, a block's Q/DQ or FP16 placement
    is not the policy's, sparsified weights lost the 2:4 pattern, or the engine runs other precisions.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shape = tuple(input_shape)
    reference = torch_outputs(model, check_batches)
    blocks = spec.blocks()
    expected = block_precisions(blocks, policy.widths, policy.precisions)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        write_trt_onnx(model, dict.fromkeys(expected, Precision.FP32), shape, (), fp32)
        fp32_check = check_fp32(reference_outputs(fp32, check_batches, basic_only=True), reference, out_dir)
    write_trt_onnx(model, expected, shape, calibration, out_dir / MODEL_NAME)
    write_trt_onnx(teacher, {b.onnx_prefix: Precision.FP32 for b in blocks}, shape, (), out_dir / BASELINE_NAME)
    graph = onnx.load(str(out_dir / MODEL_NAME))
    problems = placement_problems(graph, expected) + _sparsity_problems(graph.graph, sparse_layers)
    if problems:
        raise ExportCheckError(f"{out_dir / MODEL_NAME}: " + "; ".join(problems))
    final = reference_outputs(out_dir / MODEL_NAME, check_batches, basic_only=True)
    names = {b.onnx_prefix: b.name for b in blocks}
    engine = _build_engines(out_dir, expected, bool(sparse_layers))
    files = [MODEL_NAME, BASELINE_NAME] + ([ENGINE_NAME, BASELINE_ENGINE_NAME] if engine["built"] else [])
    manifest = Manifest(
        model=policy.model, model_ref=model_ref_of(spec), target=policy.target, policy=policy.to_dict(),
        predicted_latency_ms=policy.predicted_latency_ms, latency_kind=policy.latency_kind,
        table_fingerprint=table_fingerprint, files={name: file_entry(out_dir / name) for name in files},
        quantized_blocks={names[p]: [q] for p, q in expected.items() if q in QUANTIZED},
        checks={**fp32_check, **deviation(final, reference),
                "checked_with": "ONNX Runtime CPU (basic optimisations) running the TensorRT-bound graph",
                "sparse_2_4_layers": list(sparse_layers),
                "block_precisions": {names[p]: q for p, q in expected.items()}},
        finetune=finetune, backend="tensorrt", engine=engine,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )
    manifest.write(out_dir)
    return manifest
