"""Export: PyTorch -> ONNX, ONNX -> per-block INT8 for ONNX Runtime."""

from .onnx_export import INPUT_NAME, OPSET, OUTPUT_NAME, export_onnx
from .ort_int8 import quantize_blocks

__all__ = ["INPUT_NAME", "OPSET", "OUTPUT_NAME", "export_onnx", "quantize_blocks"]
