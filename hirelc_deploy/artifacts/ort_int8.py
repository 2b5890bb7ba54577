"""Per-block INT8 with ONNX Runtime static QDQ quantization (uint8 activations, int8 per-channel weights).

That combination is the one that runs faster than FP32 on x86 CPUs with VNNI: S8S8 QDQ gives no speedup and
S8S8 QOperator is several times slower. Blocks not chosen for INT8 are excluded node by node, so their
convolutions stay FP32, as do the stem and the head.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import onnx
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


def quantize_blocks(fp32_path: Path, out_path: Path, int8_prefixes: Sequence[str],
                    calibration: Iterable[np.ndarray]) -> Path:
    """Write to ``out_path`` a copy of ``fp32_path`` whose blocks with the given ONNX prefixes run in INT8.

    ``calibration`` yields input batches (real training images for accuracy; any data for latency work,
    since kernel speed does not depend on the scales). With no prefixes the FP32 model is copied unchanged.
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
