"""Per-block INT8 with ONNX Runtime static QDQ quantization (uint8 activations, int8 per-channel weights).

That combination is the one that runs faster than FP32 on x86 CPUs with VNNI: S8S8 QDQ gives no speedup and
S8S8 QOperator is several times slower. Blocks not chosen for INT8 are excluded node by node, so their
convolutions stay FP32, as do the stem and the head.

ONNX Runtime runs INT8 convolutions in NHWC and wraps each in layout Transposes, which its optimiser cancels
between consecutive convolutions. A residual stream that enters INT8 in NCHW (from the FP32 stem, or an FP32
block) stays NCHW, though: every residual add ran NHWC -> Transpose -> QLinearAdd -> Transpose -> NHWC (54
Transposes for 54 QLinearConvs in an all-INT8 ResNet-56, 2 when the stem is INT8 too). So each INT8 block whose
input is a residual stream from outside INT8 gets an identity depthwise 1x1 convolution on that input: ONNX
Runtime puts it in NHWC like every INT8 convolution, and the stream stays NHWC to the end of the INT8 run (2
Transposes; exact, since the identity's output calibrates to its input's scale). See ``GRAPH_FORMAT``.
"""

from __future__ import annotations

import collections
import logging
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from ..models.naming import INPUT_NAME, BlockMapper
from ..runs import atomic_write_bytes

_WEIGHTED_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
# How INT8 graphs are written; a latency table records it, and one measured on graphs written otherwise is stale.
GRAPH_FORMAT = "qdq-u8s8-per-channel, nhwc-entry"


class _ArrayReader(CalibrationDataReader):
    def __init__(self, batches: Iterable[np.ndarray]):
        self._iter = iter([{INPUT_NAME: np.ascontiguousarray(b, dtype=np.float32)} for b in batches])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._iter, None)


def unshare_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    """Give every node its own copy of initializers it shares with other nodes.

    The exporter de-duplicates equal constants (e.g. the all-zero biases BN folding gives a fresh model). If an
    INT8 convolution and an FP32 one share a bias, the quantizer's DequantizeLinear would feed the FP32 one too,
    adding a kernel to an FP32 block and giving it a bias quantized at another layer's scale.
    """
    inits = {i.name: i for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT}
    seen: set[str] = set()
    for node in model.graph.node:
        if node.op_type not in _WEIGHTED_OPS:
            continue
        for k, name in enumerate(node.input):
            if name not in inits:
                continue
            if name in seen:
                copy = onnx.TensorProto()
                copy.CopyFrom(inits[name])
                copy.name = f"{name}__{node.name}__{k}"
                model.graph.initializer.append(copy)
                node.input[k] = copy.name
            seen.add(name)
    return model


def enter_nhwc(model: onnx.ModelProto, int8_prefixes: Sequence[str]) -> onnx.ModelProto:
    """Give every INT8 block whose input is a residual stream (read by two or more of its nodes) produced
    outside the INT8 blocks an identity depthwise 1x1 convolution on that input (see the module docstring).

    The new convolution is named inside the block, so it is quantized with it and its time is the block's.
    """
    graph = model.graph
    int8 = BlockMapper(int8_prefixes)
    producer = {out: node for node in graph.node for out in node.output}
    shapes = {v.name: v.type.tensor_type.shape.dim for v in graph.value_info}
    nodes = list(graph.node)
    for prefix in int8_prefixes:
        members = [n for n in nodes if int8.block_of(n.name) == prefix]
        reads = collections.Counter(i for n in members for i in n.input
                                    if i in producer and int8.block_of(producer[i].name) is None)
        for tensor, count in reads.items():
            dims = shapes.get(tensor)
            if count < 2 or dims is None or len(dims) != 4 or not dims[1].dim_value:
                continue
            width = dims[1].dim_value
            scope = prefix.split("|")[0]
            weight = numpy_helper.from_array(np.ones((width, 1, 1, 1), np.float32), f"{scope}nhwc_entry.weight")
            graph.initializer.append(weight)
            entry = helper.make_node("Conv", [tensor, weight.name], [f"{tensor}{scope}nhwc_entry"],
                                     name=f"{scope}nhwc_entry/Conv", group=width, kernel_shape=[1, 1])
            for node in members:
                node.input[:] = [entry.output[0] if i == tensor else i for i in node.input]
            nodes.insert(nodes.index(members[0]), entry)
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def quantize_blocks(fp32_path: Path, out_path: Path, int8_prefixes: Sequence[str],
                    calibration: Iterable[np.ndarray], nhwc_entry: bool = True) -> Path:
    """Write to ``out_path`` a copy of ``fp32_path`` whose blocks with the given ONNX prefixes run in INT8.

    ``calibration`` yields input batches (real training images for accuracy; any data for latency work,
    since kernel speed does not depend on the scales). With no prefixes the FP32 model is copied unchanged.
    ``nhwc_entry=False`` writes the graph as earlier versions did (``tools/bench_int8_layout.py`` compares them).
    """
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    if not int8_prefixes:
        atomic_write_bytes(out_path, fp32_path.read_bytes())
        return out_path
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant = Path(tmp) / "int8.onnx"
        # The quantizer logs every excluded node at INFO level; keep it quiet.
        logging.getLogger("root").setLevel(logging.WARNING)
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        model = unshare_initializers(onnx.load(str(pre)))
        if nhwc_entry:
            model = enter_nhwc(model, int8_prefixes)
        onnx.save(model, str(pre))
        exclude = BlockMapper(int8_prefixes).outside(n.name for n in model.graph.node)
        quantize_static(
            str(pre),
            str(quant),
            _ArrayReader(calibration),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=exclude,
        )
        atomic_write_bytes(out_path, quant.read_bytes())
    return out_path
