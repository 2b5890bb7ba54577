"""Does ONNX Runtime really run the INT8 blocks as quantized kernels? Check the optimised graph."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

import onnx
import onnxruntime as ort

from ..models.naming import BlockMapper

QUANTIZED_OPS = {"QLinearConv", "ConvInteger", "QLinearMatMul", "MatMulInteger", "QLinearAdd"}


def quantized_blocks(path: Path, prefixes: Sequence[str], providers: Sequence[str] = ("CPUExecutionProvider",)
                     ) -> dict[str, list[str]]:
    """For each block prefix, the quantized kernel types ONNX Runtime runs inside it after optimisation."""
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.optimized_model_filepath = os.path.join(tmp, "optimized.onnx")
        options.log_severity_level = 3
        ort.InferenceSession(str(path), options, providers=list(providers))
        graph = onnx.load(options.optimized_model_filepath)
    owners = BlockMapper(prefixes).graph_owners(graph)
    found: dict[str, list[str]] = {p: [] for p in prefixes}
    for node in graph.graph.node:
        owner = owners.get(node.name)
        if node.op_type in QUANTIZED_OPS and owner in found:
            found[owner].append(node.op_type)
    return {p: sorted(set(ops)) for p, ops in found.items()}
