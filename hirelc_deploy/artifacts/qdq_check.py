"""Check a TensorRT-bound graph against the precision each block should run (see ``trt_onnx.py`` for the rules).

Run on every export, so a graph whose placement would make TensorRT fall back to FP32 (or fail to fuse a
residual Add) is refused before any engine is built.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto

from ..models.naming import BlockMapper
from ..precision import Precision
from .trt_onnx import QUANTIZED

_ELEMENT = {Precision.FP32: TensorProto.FLOAT, Precision.FP16: TensorProto.FLOAT16}


def _quantized_conv(conv: onnx.NodeProto, producers: dict, inits: dict, precision: str) -> list[str]:
    element = QUANTIZED[precision][0]
    act, weight = producers.get(conv.input[0]), producers.get(conv.input[1])
    problems = []
    if act is None or act.op_type != "DequantizeLinear" or producers.get(act.input[0]) is None \
            or producers[act.input[0]].op_type != "QuantizeLinear":
        problems.append(f"{conv.name}: activation input not quantized (Q/DQ pair expected)")
    else:
        zero = inits.get(act.input[2])
        if zero is None or zero.data_type != element or any(onnx.numpy_helper.to_array(zero).ravel()):
            problems.append(f"{conv.name}: activation not symmetric {precision} (zero point must be a 0 of that type)")
    if weight is None or weight.op_type != "DequantizeLinear" or weight.input[0] not in inits:
        problems.append(f"{conv.name}: weights not stored quantized behind a DequantizeLinear")
    else:
        stored, scale = inits[weight.input[0]], inits[weight.input[1]]
        channels = stored.dims[0]
        axis = next((a.i for a in weight.attribute if a.name == "axis"), 1)
        if stored.data_type != element or axis != 0 or list(scale.dims) != [channels]:
            problems.append(f"{conv.name}: weights not per-output-channel {precision}")
    return problems


def _residual_add(add: onnx.NodeProto, producers: dict) -> list[str]:
    sources = [producers.get(name) for name in add.input]
    from_dq = [s is not None and s.op_type == "DequantizeLinear" for s in sources]
    from_conv = [s is not None and s.op_type == "Conv" for s in sources]
    if sum(from_dq) != 1 or not any(c for c, q in zip(from_conv, from_dq) if not q):
        return [f"{add.name}: residual Add needs its shortcut quantized and its other input straight from a "
                "convolution (so the Add fuses into it)"]
    return []


def placement_problems(model: onnx.ModelProto, expected: dict[str, str]) -> list[str]:
    """One message per convolution or residual Add whose inputs do not carry its block's precision.

    ``expected`` maps block ONNX prefix -> fp32 / fp16 / int8 / fp8. Quantized blocks: Q/DQ on every convolution
    input (activation per tensor, symmetric; weights per output channel), only the shortcut of the residual Add
    quantized. FP16 and FP32 blocks: convolution inputs of that float type and no DequantizeLinear before them.
    """
    typed = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in [*typed.graph.value_info, *typed.graph.input]}
    inits = {i.name: i for i in model.graph.initializer}
    types.update({name: i.data_type for name, i in inits.items()})
    producers = {out: n for n in model.graph.node for out in n.output}
    problems = []
    mapper = BlockMapper(expected)
    for node in model.graph.node:
        prefix = mapper.block_of(node.name)
        if prefix is None or node.op_type not in ("Conv", "Add"):
            continue
        precision = expected[prefix]
        if precision in QUANTIZED:
            problems += (_quantized_conv(node, producers, inits, precision) if node.op_type == "Conv"
                         else _residual_add(node, producers))
        elif node.op_type == "Conv":
            wrong = [name for name in node.input[:2] if types.get(name) != _ELEMENT[precision]
                     or (producers.get(name) is not None and producers[name].op_type == "DequantizeLinear")]
            if wrong:
                problems.append(f"{node.name}: inputs {', '.join(wrong)} not plain {precision}")
    return problems
