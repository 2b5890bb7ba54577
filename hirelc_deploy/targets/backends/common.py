"""What every backend's latency work shares: random calibration inputs and the per-call overhead network."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper

from ...artifacts.onnx_export import OPSET
from ...models.naming import INPUT_NAME, OUTPUT_NAME


def random_calibration(input_shape: Sequence[int], batches: int = 2, seed: int = 0) -> list[np.ndarray]:
    """Calibration inputs for latency work: kernel speed does not depend on the quantization scales."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(input_shape, dtype=np.float32) for _ in range(batches)]


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
