"""Export: PyTorch -> ONNX, per-block INT8 for ONNX Runtime, checks, and the artifact manifest."""

from .manifest import MANIFEST_NAME, Manifest, load_manifest
from .onnx_export import INPUT_NAME, OPSET, OUTPUT_NAME, export_onnx
from .ort_int8 import quantize_blocks

__all__ = ["INPUT_NAME", "MANIFEST_NAME", "Manifest", "OPSET", "OUTPUT_NAME", "export_onnx", "load_manifest",
           "quantize_blocks"]
