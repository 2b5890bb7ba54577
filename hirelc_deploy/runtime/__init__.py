"""Thin wrappers over the runtimes themselves (ONNX Runtime sessions, TensorRT engines), with no knowledge of the
pipeline: the backends (``targets/backends``) and the exporters build on them."""
