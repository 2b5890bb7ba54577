"""Export: PyTorch -> ONNX, per-block INT8 for ONNX Runtime, the TensorRT-bound graph, checks, and the manifest."""

from .manifest import MANIFEST_NAME, Manifest, load_manifest
from .onnx_export import OPSET, export_onnx
from .ort_int8 import quantize_blocks

__all__ = ["MANIFEST_NAME", "Manifest", "OPSET", "export_onnx", "load_manifest", "quantize_blocks"]
