"""TensorRT engines: building them from the precision-carrying ONNX graph, and checking what TensorRT made of it.

Every network is built strongly typed: precision is read from the graph (Q/DQ nodes for INT8 and FP8, FP16
tensors and Casts for FP16), never chosen by the builder. TensorRT 11 knows no other mode and removed the
FP16/INT8 builder flags, the INT8 calibrators and OBEY_PRECISION_CONSTRAINTS; TensorRT 10 builds strongly typed
when the network is created with the STRONGLY_TYPED flag. Older versions are refused.

``tensorrt`` is imported only when an engine is built: the rest of the toolchain runs without it, and the
functions reading TensorRT's per-layer report work on plain JSON, so they are tested on any machine.
"""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch

from ..errors import HirelcError
from ..models.naming import BlockMapper
from ..precision import Precision
from ..runs import atomic_write_bytes, atomic_write_text, read_json_object

MIN_MAJOR = 10
_NEEDS = "building and running TensorRT engines needs the tensorrt package (NVIDIA's wheel) and an NVIDIA GPU"

# Words of TensorRT's "Format/Datatype" strings ("Thirty-two wide channel vectorized row major Int8 format",
# "Row major linear FP32", "Half", ...) that name the element type; spellings differ between versions.
_TYPE_WORDS = {
    "int8": "int8", "half": "fp16", "fp16": "fp16", "float": "fp32", "fp32": "fp32", "fp8": "fp8",
    "float8": "fp8", "fp8e4m3": "fp8", "e4m3": "fp8", "bfloat16": "bf16", "bf16": "bf16", "int32": "int32",
    "int64": "int64", "uint8": "uint8", "bool": "bool",
}
_PIECE_SEPARATOR = re.compile(r" \+ |[\x1e\x1f]")  # fused-layer names; 8.6+ may also use record separators
_CONV_NODE = re.compile(r"/Conv(?:_\d+)?$")


class TensorRTError(HirelcError):
    """TensorRT is missing or too old, or a build, an engine or its layer report is not what it must be."""


def parse_version(text: str) -> tuple[int, int, int]:
    """(major, minor, patch) of a version string such as ``10.13.3.9`` or ``11.0.0``."""
    parts = re.findall(r"\d+", text)[:3]
    if not parts:
        raise TensorRTError(f"tensorrt.__version__ {text!r} is not a version number")
    return tuple(int(p) for p in parts + ["0"] * (3 - len(parts)))


def tensorrt_version() -> tuple[int, int, int] | None:
    """Version of the installed ``tensorrt`` package, or None where it cannot be imported."""
    try:
        import tensorrt
    except (ImportError, OSError):  # OSError: the wheel is there but its CUDA libraries are not
        return None
    return parse_version(tensorrt.__version__)


def require_tensorrt():
    """The ``tensorrt`` module, after checking it is 10.0 or newer and that torch sees a CUDA GPU."""
    version = tensorrt_version()
    if version is None:
        raise TensorRTError(f"{_NEEDS}: tensorrt is not installed (pip install tensorrt)")
    if version[0] < MIN_MAJOR:
        raise TensorRTError(f"{_NEEDS}: tensorrt {'.'.join(map(str, version))} is too old (10.0 or newer needed)")
    if not torch.cuda.is_available():
        raise TensorRTError(f"{_NEEDS}: torch sees no CUDA GPU on this machine")
    import tensorrt

    return tensorrt


def network_flags(version: tuple[int, int, int], trt) -> int:
    """``create_network`` flags that make a strongly typed network on TensorRT ``version``.

    10.x: strongly typed only when asked. 11.x: always strongly typed; STRONGLY_TYPED is deprecated there
    (accepted and ignored) and may go, so nothing is passed. Below 10 there is no strongly typed ONNX path.
    """
    if version[0] < MIN_MAJOR:
        raise TensorRTError(f"tensorrt {'.'.join(map(str, version))} is too old: strongly typed networks need 10.0+")
    if version[0] == MIN_MAJOR:
        return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return 0


@dataclass(frozen=True)
class EngineBuild:
    """What one engine build produced and how long it took."""

    tensorrt_version: tuple[int, int, int]
    engine_path: Path
    build_seconds: float
    timing_cache_path: Path
    layer_info_path: Path
    sparse_weights: bool


@dataclass(frozen=True)
class _Parsed:
    network: object
    parser: object  # owns the weights the network points to: must live until the build is done


@functools.cache
def _logger(trt):
    """One logger for every builder and runtime: TensorRT keeps a single logger and warns when given another."""
    return trt.Logger(trt.Logger.WARNING)


def layer_info_path(engine_path: Path) -> Path:
    """Where ``build_engine`` writes the engine inspector's JSON: ``<engine>.layers.json`` beside the engine."""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".layers.json")


def _parse_onnx(trt, builder, onnx_path: Path, flags: int) -> _Parsed:
    if not Path(onnx_path).is_file():
        raise TensorRTError(f"{onnx_path}: ONNX file not found")
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, _logger(trt))
    if not parser.parse_from_file(str(onnx_path)):
        errors = [" ".join(str(parser.get_error(i)).split()) for i in range(parser.num_errors)]
        raise TensorRTError(f"{onnx_path}: TensorRT's ONNX parser failed: {'; '.join(errors) or 'no error reported'}")
    return _Parsed(network, parser)


def _builder_config(trt, builder, timing_cache_path: Path, sparse_weights: bool, workspace_mb: int):
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    # DETAILED: the inspector then reports each layer's tensors and formats, which the precision check reads.
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    if sparse_weights:
        config.set_flag(trt.BuilderFlag.SPARSE_WEIGHTS)
    cache_path = Path(timing_cache_path)
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        raise TensorRTError(f"{cache_path}: TensorRT rejected the timing cache (another TensorRT version or GPU?); "
                            "delete it to start a new one")
    return config


def deserialize_engine(trt, data: bytes, source: Path):
    """An ICudaEngine from serialized bytes (the binding keeps its runtime alive as long as the engine)."""
    engine = trt.Runtime(_logger(trt)).deserialize_cuda_engine(data)
    if engine is None:
        raise TensorRTError(f"{source}: TensorRT could not deserialize the engine (built by another version?)")
    return engine


def build_engine(onnx_path: Path, engine_path: Path, timing_cache_path: Path, sparse_weights: bool = False,
                 workspace_mb: int = 4096) -> EngineBuild:
    """Build a strongly typed engine from ``onnx_path`` and write it, the timing cache and the layer report.

    The timing cache is read from ``timing_cache_path`` when it exists and written back after the build, so
    builds of similar networks reuse each other's kernel timings. ``sparse_weights`` lets TensorRT pick 2:4
    sparse kernels where the weights hold the pattern. Every file is written atomically.
    """
    trt = require_tensorrt()
    version = parse_version(trt.__version__)
    builder = trt.Builder(_logger(trt))
    parsed = _parse_onnx(trt, builder, onnx_path, network_flags(version, trt))
    config = _builder_config(trt, builder, timing_cache_path, sparse_weights, workspace_mb)
    start = time.perf_counter()
    serialized = builder.build_serialized_network(parsed.network, config)
    seconds = time.perf_counter() - start
    if serialized is None:
        raise TensorRTError(f"{onnx_path}: TensorRT could not build an engine (its log above says why)")
    data = bytes(memoryview(serialized))
    atomic_write_bytes(Path(engine_path), data)
    atomic_write_bytes(Path(timing_cache_path), bytes(memoryview(config.get_timing_cache().serialize())))
    inspector = deserialize_engine(trt, data, Path(engine_path)).create_engine_inspector()
    info_path = layer_info_path(engine_path)
    atomic_write_text(info_path, inspector.get_engine_information(trt.LayerInformationFormat.JSON))
    return EngineBuild(version, Path(engine_path), seconds, Path(timing_cache_path), info_path, sparse_weights)


def load_layer_info(path: Path) -> dict:
    """The engine inspector's JSON written by ``build_engine``."""
    return read_json_object(Path(path), "TensorRT layer report", TensorRTError)


def fused_names(layer_name: str) -> list[str]:
    """The node names a (possibly fused) TensorRT layer name is made of."""
    return [p.strip() for p in _PIECE_SEPARATOR.split(layer_name) if p.strip()]


def tensor_precision(format_text: str) -> str | None:
    """Element type named by a ``Format/Datatype`` string (``fp32``, ``fp16``, ``int8``, ``fp8``...), or None."""
    for word in re.findall(r"[a-z0-9]+", format_text.lower()):
        if word in _TYPE_WORDS:
            return _TYPE_WORDS[word]
    return None


def _layers(layer_info: Mapping) -> list[dict]:
    layers = layer_info.get("Layers") if isinstance(layer_info, Mapping) else None
    if not isinstance(layers, list):
        raise TensorRTError("TensorRT layer report has no 'Layers' list (not the engine inspector's JSON?)")
    if any(not isinstance(layer, dict) for layer in layers):
        raise TensorRTError("TensorRT layer report lists bare layer names: the engine was built without "
                            "ProfilingVerbosity.DETAILED, which the precision check needs; rebuild it")
    return layers


# 10.x reports one "Format/Datatype" string per tensor; 11.x split it into "DataType" and "Format".
_TYPE_KEYS = ("DataType", "Format/Datatype", "Format/DataType", "Format")


def _precision(layer: dict, side: str) -> str | None:
    tensors = layer.get(side) or []
    if not tensors:
        return None
    return next((found for key in _TYPE_KEYS if (found := tensor_precision(str(tensors[0].get(key, ""))))), None)


def _is_reformat(layer: dict) -> bool:
    return layer.get("LayerType") == "Reformat" or str(layer.get("Name", "")).startswith("Reformatting ")


def _is_convolution(layer: dict) -> bool:
    return "Convolution" in f"{layer.get('ParameterType', '')} {layer.get('LayerType', '')}"


def conv_nodes(layer_name: str) -> list[str]:
    """The ONNX Conv nodes among those a (possibly fused) TensorRT layer is made of."""
    return [p for p in fused_names(layer_name) if _CONV_NODE.search(p)]


def _conv_blocks(name: str, mapper: BlockMapper) -> list[str]:
    """Blocks of a convolution layer: those of its Conv nodes (a block's last convolution may carry the next
    block's input quantization fused in), or every block it mentions when no piece is a Conv node.

    A fused layer is named after its ONNX nodes joined by `` + `` and a reformat layer after the layer it feeds
    (``Reformatting CopyNode for Input Tensor 0 to /layer1/layer1.0/conv1/Conv``); the graph names every node,
    Q/DQ and Cast of a block under the block's prefix."""
    return mapper.mentioned(" + ".join(conv_nodes(name)) or name)


def _conv_problems(layers: list[dict], expected: Mapping[str, str]) -> list[str]:
    found: dict[str, list[tuple[str, str | None]]] = {p: [] for p in expected}
    mapper = BlockMapper(expected)
    for layer in layers:
        if _is_convolution(layer) and not _is_reformat(layer):
            for block in _conv_blocks(str(layer.get("Name", "")), mapper):
                found[block].append((str(layer.get("Name", "")), _precision(layer, "Inputs")))
    problems = []
    for block, want in expected.items():
        wrong = [(name, got) for name, got in found[block] if got != want]
        if wrong:
            name, got = wrong[0]
            problems.append(f"block {block} should run {want} but {len(wrong)} of {len(found[block])} convolution "
                            f"layer(s) read {got or 'an unknown type'} (e.g. '{name}')")
    return problems


def _reformat_problems(layers: list[dict], expected: Mapping[str, str]) -> list[str]:
    """Reformats inside an INT8/FP8 block (named for a layer of the block and reading a tensor of it) that
    convert to or from FP32: the sign of quantized layers silently running FP32 between conversions."""
    problems = []
    low = BlockMapper(p for p, want in expected.items() if want in (Precision.INT8, Precision.FP8))
    for layer in filter(_is_reformat, layers):
        source, target = _precision(layer, "Inputs"), _precision(layer, "Outputs")
        if source == target or Precision.FP32 not in (source, target):
            continue
        read = low.mentioned(str((layer.get("Inputs") or [{}])[0].get("Name", "")))
        name = str(layer.get("Name", ""))
        for block in [b for b in low.mentioned(name) if b in read]:
            problems.append(f"block {block} ({expected[block]}): reformat layer '{name}' converts {source} to "
                            f"{target}")
    return problems


def unchecked_blocks(layer_info: Mapping, expected: Mapping[str, str]) -> list[str]:
    """Blocks with no convolution layer of their own in the report, so ``check_precisions`` cannot judge them:
    TensorRT's Myelin compiler can swallow layers into ``{ForeignNode[first...last]}`` layers, whose inner nodes
    the report does not list. Reported as a warning, not a failure: nothing says they run the wrong precision."""
    mapper = BlockMapper(expected)
    seen = {block for layer in _layers(layer_info) if _is_convolution(layer) and not _is_reformat(layer)
            for block in _conv_blocks(str(layer.get("Name", "")), mapper)}
    return [block for block in expected if block not in seen]


def check_precisions(layer_info: Mapping, expected: Mapping[str, str]) -> list[str]:
    """Problems (one line each) with an engine's precisions; empty when every block runs as ``expected``.

    ``layer_info`` is the engine inspector's JSON (DETAILED verbosity); ``expected`` maps each block prefix
    that computes to ``fp32``, ``fp16``, ``int8`` or ``fp8``. A block's convolutions must read their input in
    its precision (Int8, Half, Float, FP8), and no reformat inside an INT8 or FP8 block may convert to or
    from FP32.
    """
    layers = _layers(layer_info)
    return _conv_problems(layers, expected) + _reformat_problems(layers, expected)

