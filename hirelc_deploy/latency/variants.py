"""Build the ONNX file of one width/precision configuration of a model, as it would really be deployed."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper

from ..export import INPUT_NAME, OPSET, OUTPUT_NAME, export_onnx, quantize_blocks
from ..models import ModelSpec


def random_calibration(input_shape: Sequence[int], batches: int = 2, seed: int = 0) -> list[np.ndarray]:
    """Calibration inputs for latency work: kernel speed does not depend on the quantization scales."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(input_shape, dtype=np.float32) for _ in range(batches)]


def build_variant(spec: ModelSpec, widths: Sequence[int], precisions: Sequence[str], input_shape: Sequence[int],
                  path: Path, calibration: Sequence[np.ndarray] | None = None) -> Path:
    """Export ``spec`` at ``widths`` (random weights) with the blocks marked ``int8`` quantized, to ``path``."""
    model = spec.build(list(widths))
    blocks = spec.blocks()
    # A removed block (width 0) runs only its shortcut's data movement: nothing to quantize.
    int8 = [b.onnx_prefix for b, w, p in zip(blocks, widths, precisions) if p == "int8" and w > 0]
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(model, tuple(input_shape), Path(tmp) / "fp32.onnx")
        return quantize_blocks(fp32, path, int8, calibration or random_calibration(input_shape))


def build_trt_variant(spec: ModelSpec, widths: Sequence[int], precisions: Sequence[str],
                      input_shape: Sequence[int], path: Path) -> dict[str, str]:
    """Write the TensorRT-bound ONNX of ``spec`` at ``widths`` (random weights), each block in its precision, to
    ``path``; returns the block prefix -> precision map the engine is checked against (``write_trt_onnx``)."""
    from ..export.trt_onnx import write_trt_onnx

    model = spec.build(list(widths)).eval()
    return write_trt_onnx(model, precisions, input_shape, random_calibration(input_shape), path)


def overhead_model(input_shape: Sequence[int], num_classes: int, path: Path) -> Path:
    """A network that does almost nothing but takes the same input and returns logits of the same shape.

    Its latency is the per-call cost of the runtime (argument checks, input binding, output allocation)
    that no profiler node accounts for.
    """
    batch = input_shape[0]
    nodes = [
        helper.make_node("GlobalAveragePool", [INPUT_NAME], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Slice", ["flat", "starts", "ends", "axes"], ["sliced"]),
        helper.make_node("Tile", ["sliced", "repeats"], [OUTPUT_NAME]),
    ]
    inits = [
        helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
        helper.make_tensor("ends", TensorProto.INT64, [1], [1]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        helper.make_tensor("repeats", TensorProto.INT64, [2], [1, num_classes]),
    ]
    graph = helper.make_graph(
        nodes, "overhead",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, list(input_shape))],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [batch, num_classes])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return Path(path)
