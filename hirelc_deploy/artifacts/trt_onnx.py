"""The ONNX graph handed to TensorRT: every block's precision written into the graph itself.

TensorRT 11 builds every network strongly typed (10.x does when asked): precision is read from the graph, not
chosen by the builder. So INT8 and FP8 blocks carry explicit QuantizeLinear/DequantizeLinear pairs and FP16
blocks carry FP16 tensors, following TensorRT's Q/DQ placement recommendations:

* every input of a weighted layer is quantized: the activation per tensor, symmetric (zero point 0, scale from
  the calibration maximum), the weights per output channel, symmetric, stored quantized behind a
  DequantizeLinear;
* outputs of the main branch's convolutions are not quantized, so convolution + bias + ReLU fuse, and the
  residual Add of a quantized block has only its shortcut input quantized (a projection shortcut's convolution
  output included), so the Add fuses into the main branch's last convolution;
* the quantization of a block's input belongs to that block: whether a tensor is quantized depends only on who
  reads it, so an INT8 block after an FP32 one quantizes its input and the FP32 block's output stays FP32.

The stem and the head stay FP32, as the latency tables assume. Activation ranges come from ONNX Runtime's
MinMax calibrator over real training images. Every inserted node is named under its block's ONNX prefix, so
TensorRT's fused layer names still say which block they belong to.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import ml_dtypes
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator
from torch import nn

from ..models import BlockInfo
from ..models.naming import BlockMapper
from ..precision import Precision
from ..runs import atomic_write_bytes
from .onnx_export import export_onnx
from .ort_int8 import _ArrayReader, unshare_initializers

# FLOAT8E4M3FN Q/DQ needs opset 19; one opset for every TensorRT graph keeps them comparable.
TRT_OPSET = 19
QUANTIZED = {Precision.INT8: (TensorProto.INT8, np.int8, 127.0),
             Precision.FP8: (TensorProto.FLOAT8E4M3FN, ml_dtypes.float8_e4m3fn, 448.0)}
# A channel or tensor that is all zero still needs a positive scale (TensorRT refuses scale 0).
_MIN_RANGE = 1e-8


def block_precisions(blocks: Sequence[BlockInfo], widths: Sequence[int], precisions: Sequence[str]
                     ) -> dict[str, str]:
    """Block ONNX prefix -> precision, for the blocks that still compute (a removed block has no kernels)."""
    return {b.onnx_prefix: p for b, w, p in zip(blocks, widths, precisions) if w > 0}


def write_trt_onnx(model: nn.Module, expected: dict[str, str], input_shape: Sequence[int],
                   calibration: Iterable[np.ndarray], path: Path) -> dict[str, str]:
    """Export ``model`` for TensorRT with each block in its precision (fp32, fp16, int8, fp8) to ``path``.

    ``expected`` maps the prefix of every block that computes to its precision (``block_precisions``);
    ``calibration`` yields input batches (real training images for accuracy; any data for latency work).
    Returns ``expected``: the map the engine check compares TensorRT's layers with.
    """
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(model, tuple(input_shape), Path(tmp) / "fp32.onnx", opset=TRT_OPSET)
        graph = unshare_initializers(fold_identities(onnx.load(str(fp32))))
        quantized = {p: q for p, q in expected.items() if q in QUANTIZED}
        if quantized:
            onnx.save(graph, str(fp32))
            insert_qdq(graph, quantized, activation_ranges(fp32, calibration, Path(tmp)))
        half = [p for p, q in expected.items() if q == Precision.FP16]
        if half:
            graph = to_fp16(graph, half)
    onnx.checker.check_model(graph, full_check=True)
    atomic_write_bytes(Path(path), graph.SerializeToString())
    return expected


def fold_identities(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace each Identity of an initializer by a copy of the initializer, in place.

    The exporter shares equal constants (the all-zero biases of a fresh model's folded BatchNorm) through
    Identity nodes outside every block; a block converted to FP16 or quantized must own its constants.
    """
    initializers = {i.name: i for i in model.graph.initializer}
    kept = []
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input[0] in initializers:
            copy = onnx.TensorProto()
            copy.CopyFrom(initializers[node.input[0]])
            copy.name = node.output[0]
            model.graph.initializer.append(copy)
        else:
            kept.append(node)
    del model.graph.node[:]
    model.graph.node.extend(kept)
    used = {name for n in kept for name in n.input}
    unused = [i for i in model.graph.initializer if i.name not in used]
    for init in unused:
        model.graph.initializer.remove(init)
    return model


def activation_ranges(model_path: Path, calibration: Iterable[np.ndarray], workdir: Path) -> dict[str, float]:
    """Largest absolute value of every Conv and Add input and output over the calibration batches."""
    calibrator = create_calibrator(model_path, op_types_to_calibrate=["Conv", "Add"],
                                   augmented_model_path=workdir / "augmented.onnx",
                                   calibrate_method=CalibrationMethod.MinMax)
    calibrator.collect_data(_ArrayReader(calibration))
    ranges = calibrator.compute_data()
    return {name: float(max(abs(np.min(r.range_value[0])), abs(np.max(r.range_value[1]))))
            for name, r in ranges.data.items()}


def _shortcut_input(add: onnx.NodeProto, producers: dict[str, onnx.NodeProto], prefix: str) -> int:
    """Which input of a block's residual Add is the shortcut (the one TensorRT wants quantized).

    The other input comes from the main branch's last convolution, whose own input is computed inside the block;
    a projection shortcut's convolution reads the block input, computed outside it. Call before inserting Q/DQ.
    """
    def main_branch(name: str) -> bool:
        conv = producers.get(name)
        source = producers.get(conv.input[0]) if conv is not None and conv.op_type == "Conv" else None
        return source is not None and any(source.name.startswith(scope) for scope in prefix.split("|"))

    return 0 if main_branch(add.input[1]) else 1


class _Inserter:
    """Inserts Q/DQ nodes before the node that first needs them, keeping the graph topologically sorted."""

    def __init__(self, graph: onnx.GraphProto, ranges: dict[str, float]):
        self.graph, self.ranges = graph, ranges
        self.initializers = {i.name: i for i in graph.initializer}
        self.pending: list[onnx.NodeProto] = []
        self.done: dict[tuple[str, str], str] = {}

    def _constant(self, name: str, array: np.ndarray) -> str:
        self.graph.initializer.append(numpy_helper.from_array(array, name))
        return name

    def activation(self, tensor: str, prefix: str, precision: str) -> str:
        """The dequantized copy of ``tensor`` for a block: one Q/DQ pair per tensor and block."""
        if (tensor, prefix) in self.done:
            return self.done[(tensor, prefix)]
        _, dtype, qmax = QUANTIZED[precision]
        base = f"{prefix}{tensor.strip('/').replace('/', '_')}_{precision}"
        scale = self._constant(f"{base}_scale", np.array(max(self.ranges[tensor], _MIN_RANGE) / qmax, np.float32))
        zero = self._constant(f"{base}_zero", np.zeros((), dtype))
        self.pending += [helper.make_node("QuantizeLinear", [tensor, scale, zero], [f"{base}_q"], name=f"{base}/Q"),
                         helper.make_node("DequantizeLinear", [f"{base}_q", scale, zero], [f"{base}_dq"],
                                          name=f"{base}/DQ")]
        self.done[(tensor, prefix)] = f"{base}_dq"
        return f"{base}_dq"

    def weight(self, name: str, node: onnx.NodeProto, precision: str) -> str:
        """Replace a float weight by its per-output-channel quantized copy behind a DequantizeLinear."""
        _, dtype, qmax = QUANTIZED[precision]
        weight = numpy_helper.to_array(self.initializers[name]).astype(np.float32)
        amax = np.abs(weight.reshape(weight.shape[0], -1)).max(axis=1)
        scale = (np.maximum(amax, _MIN_RANGE) / qmax).astype(np.float32)
        scaled = weight / scale.reshape(-1, *([1] * (weight.ndim - 1)))
        quantized = np.clip(np.round(scaled), -qmax, qmax).astype(dtype) if dtype is np.int8 else scaled.astype(dtype)
        base = f"{node.name}_weight_{precision}"
        self._constant(f"{base}_q", quantized)
        self._constant(f"{base}_scale", scale)
        self._constant(f"{base}_zero", np.zeros(scale.shape, dtype))
        self.pending.append(helper.make_node("DequantizeLinear", [f"{base}_q", f"{base}_scale", f"{base}_zero"],
                                             [f"{base}_dq"], name=f"{base}/DQ", axis=0))
        return f"{base}_dq"


def insert_qdq(model: onnx.ModelProto, quantized: dict[str, str], ranges: dict[str, float]) -> onnx.ModelProto:
    """Insert TensorRT-style Q/DQ for the blocks in ``quantized`` (ONNX prefix -> int8 / fp8), in place."""
    graph = model.graph
    producers = {out: n for n in graph.node for out in n.output}
    mapper = BlockMapper(quantized)
    owners = {n.name: mapper.block_of(n.name) for n in graph.node}
    shortcut = {n.name: _shortcut_input(n, producers, owners[n.name]) for n in graph.node
                if n.op_type == "Add" and owners[n.name] is not None}
    inserter = _Inserter(graph, ranges)
    ordered: list[onnx.NodeProto] = []
    for node in graph.node:
        prefix = owners[node.name]
        if prefix is not None and node.op_type == "Conv":
            precision = quantized[prefix]
            node.input[0] = inserter.activation(node.input[0], prefix, precision)
            node.input[1] = inserter.weight(node.input[1], node, precision)
        elif prefix is not None and node.op_type == "Add":
            k = shortcut[node.name]
            node.input[k] = inserter.activation(node.input[k], prefix, quantized[prefix])
        ordered += inserter.pending + [node]
        inserter.pending = []
    replaced = {i.name for i in graph.initializer} - {name for n in ordered for name in n.input}
    kept = [i for i in graph.initializer if i.name not in replaced]
    del graph.node[:], graph.initializer[:]
    graph.node.extend(ordered)
    graph.initializer.extend(kept)
    return model


def to_fp16(model: onnx.ModelProto, prefixes: Sequence[str]) -> onnx.ModelProto:
    """Make the nodes of the given blocks compute in FP16, with a Cast only where the precision changes.

    Not ONNX Runtime's ``convert_float_to_float16``: with a node block list it converts the whole graph and wraps
    every kept-FP32 node in a Cast pair, which a strongly typed TensorRT network would have to execute. Here the
    FP16 blocks' float weights become FP16, a tensor entering them from FP32 is cast once (the Cast named under
    the block that reads it) and a tensor leaving them is cast back once (named under the block that wrote it).
    """
    typed = onnx.shape_inference.infer_shapes(model)
    floats = {v.name for v in [*typed.graph.value_info, *typed.graph.input, *typed.graph.output]
              if v.type.tensor_type.elem_type == TensorProto.FLOAT}
    floats |= {i.name for i in model.graph.initializer if i.data_type == TensorProto.FLOAT}
    graph = model.graph
    mapper = BlockMapper(prefixes)
    half = {n.name for n in graph.node if mapper.block_of(n.name)}
    produced_by_half = {out for n in graph.node if n.name in half for out in n.output}
    initializers = {i.name: i for i in graph.initializer}
    outputs = {o.name for o in graph.output}
    read_outside = {name for n in graph.node if n.name not in half for name in n.input} | outputs
    ordered: list[onnx.NodeProto] = []
    entering: dict[str, str] = {}
    renamed: dict[str, str] = {}  # FP16 outputs also read outside the blocks: their FP16 name
    for node in graph.node:
        if node.name not in half:
            ordered.append(node)
            continue
        node.input[:] = [renamed.get(name, name) for name in node.input]
        prefix = mapper.block_of(node.name)
        for attribute in node.attribute:
            if node.op_type == "Constant" and attribute.name == "value" and attribute.t.data_type == TensorProto.FLOAT:
                attribute.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attribute.t).astype(np.float16)))
        for k, name in enumerate(node.input):
            if name in initializers and name in floats:
                initializers[name].CopyFrom(numpy_helper.from_array(
                    numpy_helper.to_array(initializers[name]).astype(np.float16), name))
            elif name in floats and name not in produced_by_half:
                if name not in entering:
                    entering[name] = f"{prefix}{name.strip('/').replace('/', '_')}_fp16"
                    ordered.append(helper.make_node("Cast", [name], [entering[name]], name=f"{entering[name]}/Cast",
                                                    to=TensorProto.FLOAT16))
                node.input[k] = entering[name]
        ordered.append(node)
        for k, name in enumerate(node.output):
            if name in floats and name in read_outside:
                node.output[k] = renamed[name] = f"{name}_fp16"
                ordered.append(helper.make_node("Cast", [node.output[k]], [name], name=f"{name}_fp32/Cast",
                                                to=TensorProto.FLOAT))
    del graph.node[:], graph.value_info[:]
    graph.node.extend(ordered)
    return onnx.shape_inference.infer_shapes(model)
