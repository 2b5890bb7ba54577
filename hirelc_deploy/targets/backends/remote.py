"""The remote backend: ONNX Runtime on another device, reached through the ``hirelc-agent`` running there.

This machine builds every graph (variants, calibration engines, finalists, exports) exactly as the ONNX Runtime
backend does; the agent times them on the device with the shared protocol, in fresh sessions of a process that
never runs PyTorch (so nothing here needs a fresh process), and splits a profiled graph's time per node in the
graph its own ONNX Runtime optimised. Top-1 of an export is scored through the same graph in ONNX Runtime on this
machine (the device gets no images), and records say so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

from hirelc_agent.timing import Timing

from ...data import Images, Normalize
from ...errors import DeviceError
from ...artifacts.artifact import BASELINE_NAME, MODEL_NAME
from ...models.naming import BlockMapper
from ...records import BenchResult
from ...runtime.onnxruntime import NodeProfile, attribute_nodes
from ..agent_client import AgentClient
from ..fingerprint import Fingerprint, device_identity
from ..target import Target
from .onnxruntime import OnnxRuntimeBackend


class RemoteBackend(OnnxRuntimeBackend):
    """ONNX Runtime on the device a target's ``[device]`` names; graphs built here, timed there."""

    name = "remote"
    # The device's provider may not exist here: top-1 is scored through the same graph on this machine's CPU.
    scoring_provider = "CPUExecutionProvider"
    top1_through = "the exported model in ONNX Runtime on this machine's CPU (not on the device)"

    def __init__(self):
        self._clients: dict[tuple, AgentClient] = {}

    def client(self, target: Target) -> AgentClient:
        """The agent of ``target``'s device (one client per device and target in a process), checked to run the
        target's execution provider."""
        key = (target.device, target.name)
        if key not in self._clients:
            client = AgentClient(target.device, target.name)
            providers = client.describe()["execution_providers"]
            if target.execution_provider not in providers:
                raise DeviceError(f"{client.where}: the device has no {target.execution_provider} (it has "
                                  f"{', '.join(providers)}); fix execution_provider in {target.path}")
            self._clients[key] = client
        return self._clients[key]

    def fingerprint(self, target: Target) -> Fingerprint:
        return device_identity(target, self.client(target).describe())

    def measured_on(self, target: Target) -> str:
        device = self.client(target).describe()
        return (f"the hirelc-agent at {target.device.url} ({device['hostname']}: {device['cpu_model']}, "
                f"onnxruntime {device['onnxruntime_version']})")

    def profile_method(self, target: Target) -> dict:
        """The agent's whole description of its device (memory, OS, providers, ...), beyond the fingerprint."""
        return {"device": {"url": target.device.url, **self.client(target).describe()}}

    def time_graphs(self, paths: Mapping[str, Path], target: Target, on_burst: Callable[[], None] | None = None
                    ) -> dict[str, Timing]:
        return self.client(target).time(paths, target, on_burst)

    def time_graphs_fresh(self, paths: Mapping[str, Path], target: Target) -> dict[str, Timing]:
        return self.time_graphs(paths, target)

    def node_profile(self, path: Path, target: Target, mapper: BlockMapper) -> NodeProfile:
        times = self.client(target).profile(path, target, target.measure.profile_runs, target.measure.warmup_runs)
        return attribute_nodes(times, mapper)

    def bench_export(self, artifacts: Path, target: Target, images: Images, normalize: Normalize) -> BenchResult:
        """``bench_files`` of the exported model against its baseline: timed on the device, scored here."""
        return self.bench_files(Path(artifacts) / MODEL_NAME, target, Path(artifacts) / BASELINE_NAME, images,
                                normalize)


BACKEND = RemoteBackend()
