"""TensorRT engines on the GPU: bound to torch CUDA buffers, timed end to end with CUDA events, and profiled per
layer (time split between blocks).

End-to-end latency is timed with CUDA events around each inference, one inference in flight at a time, with no
profiler attached. How that time splits between blocks comes from TensorRT's per-layer profiler in separate runs
(the profiler slows every layer down); ``latency.attribution`` then rescales the split to the measured totals,
exactly as for ONNX Runtime, so a TensorRT table has the same format.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Callable, Mapping

import torch

from hirelc_agent.timing import Timing, measure_interleaved
from ..models.naming import BlockMapper
from ..targets.target import MeasureSettings
from .tensorrt import TensorRTError, conv_nodes, deserialize_engine, fused_names, require_tensorrt

# TensorRT DataType names -> torch dtypes of the buffers bound to an engine's inputs and outputs.
_TORCH_DTYPES = {
    "FLOAT": torch.float32, "HALF": torch.float16, "BF16": torch.bfloat16, "INT8": torch.int8,
    "INT32": torch.int32, "INT64": torch.int64, "BOOL": torch.bool, "UINT8": torch.uint8,
    "FP8": torch.float8_e4m3fn,
}


class EngineRunner:
    """A deserialised engine whose inputs and outputs are bound to torch CUDA tensors, run on its own stream."""

    def __init__(self, engine_path: Path, seed: int = 0):
        trt = require_tensorrt()
        self.path = Path(engine_path)
        if not self.path.is_file():
            raise TensorRTError(f"{self.path}: engine file not found")
        self.engine = deserialize_engine(trt, self.path.read_bytes(), self.path)
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise TensorRTError(f"{self.path}: TensorRT could not create an execution context")
        self.stream = torch.cuda.Stream()
        self.tensors = self._bind(trt, torch.Generator(device="cuda").manual_seed(seed))
        # The buffers were filled on the default stream; the engine reads them on its own.
        torch.cuda.synchronize()

    def _bind(self, trt, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """A CUDA tensor per I/O tensor (random inputs), its address given to the execution context."""
        tensors = {}
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            shape = tuple(self.engine.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise TensorRTError(f"{self.path}: tensor '{name}' has dynamic shape {shape}; engines here are built "
                                    "for one fixed input shape")
            dtype = _TORCH_DTYPES.get(self.engine.get_tensor_dtype(name).name)
            if dtype is None:
                raise TensorRTError(f"{self.path}: tensor '{name}' has type {self.engine.get_tensor_dtype(name)}, "
                                    "which has no torch buffer type here")
            tensor = torch.zeros(shape, dtype=dtype, device="cuda")
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT and dtype.is_floating_point:
                tensor.copy_(torch.randn(shape, generator=generator, device="cuda"))
            if not self.context.set_tensor_address(name, tensor.data_ptr()):
                raise TensorRTError(f"{self.path}: TensorRT refused the buffer of tensor '{name}'")
            tensors[name] = tensor
        return tensors

    def run(self) -> None:
        """Enqueue one inference on the runner's stream (it returns before the GPU has finished)."""
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise TensorRTError(f"{self.path}: execute_async_v3 failed")

    def warm_up(self, runs: int) -> None:
        """Run ``runs`` inferences and wait for them (lazy initialisation, clocks, caches)."""
        for _ in range(runs):
            self.run()
        self.stream.synchronize()

    def timed_run(self) -> float:
        """Latency (ms) of one inference: CUDA events recorded around it on an idle stream.

        Waiting for each inference before the next starts measures latency, not throughput: the start event
        fires at once on the idle stream, so the time the host takes to enqueue the kernels is included.
        """
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record(self.stream)
        self.run()
        end.record(self.stream)
        end.synchronize()
        return start.elapsed_time(end)


def time_engines(engine_paths: Mapping[str, Path], settings: MeasureSettings,
                 on_burst: Callable[[], None] | None = None) -> dict[str, Timing]:
    """End-to-end latency of every engine with CUDA events, in interleaved bursts (``measure_interleaved``'s
    rules: rotating order, extra rounds while burst medians disagree, waiting while the CPU that enqueues the
    kernels is busy). No profiler is attached: per-layer times come from a separate run."""
    if not engine_paths:
        return {}
    runners = {name: EngineRunner(path) for name, path in engine_paths.items()}
    for runner in runners.values():
        runner.warm_up(settings.warmup_runs)
    return measure_interleaved({name: r.timed_run for name, r in runners.items()}, settings, on_burst,
                               self_timed=True)


def _layer_recorder(trt):
    """An IProfiler collecting every reported time per layer name (defined here: its base class is TensorRT's)."""

    class LayerRecorder(trt.IProfiler):
        def __init__(self):
            trt.IProfiler.__init__(self)
            self.times: dict[str, list[float]] = defaultdict(list)

        def report_layer_time(self, layer_name: str, ms: float) -> None:
            self.times[layer_name].append(ms)

    return LayerRecorder()


def profile_layers(engine_path: Path, runs: int, warmup: int) -> dict[str, float]:
    """Median time (ms) of each engine layer over ``runs`` profiled inferences, in TensorRT's report order."""
    trt = require_tensorrt()
    runner = EngineRunner(engine_path)
    runner.warm_up(warmup)
    recorder = _layer_recorder(trt)
    runner.context.profiler = recorder
    for _ in range(runs):
        runner.run()
        runner.stream.synchronize()
    if not recorder.times:
        raise TensorRTError(f"{engine_path}: TensorRT's profiler reported no layer times")
    return {name: statistics.median(times) for name, times in recorder.times.items()}


def _owners(layer_name: str, mapper: BlockMapper) -> list[str | None]:
    """Who computes a (fused) layer: the owners of its convolutions when it has any (the next block's input
    quantization fused into a convolution is only its epilogue), else of all its nodes; None stands for
    module-path nodes outside every block (stem or head). Nodes TensorRT made up (no module path) own nothing,
    so a layer of only such nodes goes to the stem or head by position."""
    owners: list[str | None] = []
    for node in conv_nodes(layer_name) or fused_names(layer_name):
        blocks = mapper.mentioned(node)
        owners += blocks or ([None] if "/" in node else [])
    return list(dict.fromkeys(owners)) or [None]


def block_times(layer_ms: Mapping[str, float], mapper: BlockMapper) -> tuple[dict[str, float], float, float]:
    """Per-layer times summed per block prefix, and the stem and head times.

    A layer is charged to the owner of its convolutions (a block's last convolution with the next block's input
    quantization fused in belongs to that block); a layer of several owners' convolutions is split evenly. Time
    outside every block is the stem's before the first layer that belongs to a block, in report (execution)
    order, and the head's after.
    """
    per_block = dict.fromkeys(mapper.prefixes, 0.0)
    stem = head = 0.0
    seen_block = False
    for name, ms in layer_ms.items():
        owners = _owners(name, mapper)
        for owner in owners:
            if owner is not None:
                per_block[owner] += ms / len(owners)
            elif seen_block:
                head += ms / len(owners)
            else:
                stem += ms / len(owners)
        seen_block = seen_block or any(o is not None for o in owners)
    return per_block, stem, head
