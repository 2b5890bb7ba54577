"""PyTorch -> ONNX with the TorchScript exporter, keeping module-path node names that map to blocks."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from ..models.naming import INPUT_NAME, OUTPUT_NAME
from ..runs import atomic_write_bytes

OPSET = 17


def export_onnx(model: nn.Module, input_shape: tuple[int, ...], path: Path, opset: int = OPSET) -> Path:
    """Export ``model`` (eval mode, fixed ``input_shape`` including batch) to a single ONNX file at ``path``.

    The TorchScript exporter (``dynamo=False``) is used on purpose: it names nodes after module paths
    (``/layer1/layer1.0/conv1/Conv``), which is how latency is attributed to blocks, and writes one file.
    Shapes are static because ONNX Runtime plans memory and picks kernels better for a fixed batch.
    """
    model = model.eval()
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(*input_shape),),
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            do_constant_folding=True,
        )
    onnx.checker.check_model(onnx.load_from_string(buffer.getvalue()))
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)
