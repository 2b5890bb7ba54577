"""Where candidate evaluations run: in this process (``local``, the default) or as Ray tasks (``ray``).

An executor gets a batch of configurations (the search's ask-k) and returns their results in the same order
(tell-k). The evaluator decides what is computed (its cache, the order); the executor only decides where. So a
seed's search is the same with the local executor and with any number of Ray workers: the strategies' batches
are their own (never sized by the workers), each candidate is built and scored on its own, and the results come
back in proposal order.

With Ray the evaluator (the model, the held-out and BatchNorm tensors, the sensitivity) goes through the object
store once per search, and each worker process deserialises it once and keeps it for the following tasks. Each
task asks for ``num_cpus`` CPUs and ``num_gpus`` GPUs; a worker that dies mid-evaluation is retried by Ray
(``max_retries``) and, since results are recorded by the caller when they come back, recorded once.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Protocol, Sequence

from ..errors import InputError
from ..models.user_model import USER_MODULE_PREFIX

EXECUTORS = ("local", "ray")


class Executor(Protocol):
    """Where an evaluator's candidates are built and scored."""

    name: str

    def run(self, evaluator, configs: Sequence[tuple]) -> list:
        """The results of ``configs`` (``(widths, precisions)`` each, none of them cached), in order."""

    def describe(self) -> str:
        """One line for the run log and records: what ran the evaluations."""


class LocalExecutor:
    """Evaluations one after another in this process."""

    name = "local"

    def run(self, evaluator, configs: Sequence[tuple]) -> list:
        """The results of ``configs`` (``(widths, precisions)`` each), in order."""
        return [evaluator.compute(widths, precisions) for widths, precisions in configs]

    def describe(self) -> str:
        return "local (this process)"


def import_ray(flag: str = "--executor ray"):
    """The ``ray`` module, or the one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise InputError(f"{flag}: Ray is not installed; install it with pip install 'hirelc-deploy[ray]'") from None
    return ray


def connect(address: str | None, flag: str = "--executor ray"):
    """Ray, initialised: the cluster at ``address`` (``auto``: the one this machine belongs to; ``ray://...``:
    a remote one), or a Ray instance on this machine started for this process when ``address`` is None."""
    ray = import_ray(flag)
    if not ray.is_initialized():
        try:
            # "local": a new instance even when a stale or running one on this machine could be found
            ray.init(address=address or "local", include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"--ray-address {address}" if address else flag
            raise InputError(f"{where}: could not connect to Ray ({str(exc).splitlines()[0]})") from None
    return ray


@dataclass(frozen=True)
class TaskResources:
    """What one evaluation task asks Ray for."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    max_retries: int = 3  # a worker killed mid-evaluation: the task runs again, up to this many times


class RayExecutor:
    """Evaluations as Ray tasks on the cluster at ``address`` (a local instance when None)."""

    name = "ray"

    def __init__(self, address: str | None = None, resources: TaskResources = TaskResources()):
        self.ray = connect(address)
        self.address = address
        self.resources = resources
        self._task = self.ray.remote(_evaluate_in_worker).options(
            num_cpus=resources.num_cpus, num_gpus=resources.num_gpus, max_retries=resources.max_retries)
        self._shipped: tuple[object, object] | None = None  # (evaluator, its object ref)

    def _ref(self, evaluator):
        if self._shipped is None or self._shipped[0] is not evaluator:
            _pickle_user_modules_by_value(self.ray, evaluator.teacher)
            self._shipped = (evaluator, self.ray.put(evaluator))
        return self._shipped[1]

    def run(self, evaluator, configs: Sequence[tuple]) -> list:
        """The results of ``configs``, computed in parallel by the cluster's workers, in order."""
        ref = self._ref(evaluator)
        # The reference goes inside a list so Ray hands the task the reference, not the value: the worker
        # deserialises the evaluator once and keeps it (``_evaluate_in_worker``).
        return self.ray.get([self._task.remote([ref], list(widths), list(precisions))
                             for widths, precisions in configs])

    @property
    def workers(self) -> int:
        """How many evaluations the cluster runs at once."""
        total = self.ray.cluster_resources()
        by_cpu = int(total.get("CPU", 0) // self.resources.num_cpus) if self.resources.num_cpus else 0
        if self.resources.num_gpus:
            return min(by_cpu, int(total.get("GPU", 0) // self.resources.num_gpus))
        return by_cpu

    def describe(self) -> str:
        where = self.address or "a Ray instance started on this machine"
        return (f"ray ({where}: {self.workers} evaluation(s) at once, {self.resources.num_cpus:g} CPU and "
                f"{self.resources.num_gpus:g} GPU each)")


def make_executor(name: str, address: str | None = None, gpus_per_eval: float = 0.0):
    """The executor called ``name`` (``--executor``); ``address`` and ``gpus_per_eval`` only apply to Ray."""
    if name == "local":
        if address:
            raise InputError("--ray-address: only applies with --executor ray")
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(address, TaskResources(num_gpus=gpus_per_eval))
    raise InputError(f"--executor: unknown executor '{name}' (choose from {', '.join(EXECUTORS)})")


def _pickle_user_modules_by_value(ray, model) -> None:
    # A model built from the user's file lives in a module the workers cannot import (it was loaded by path
    # under a made-up name): ship its code with it.
    for name in {type(m).__module__ for m in model.modules()}:
        if name.startswith(USER_MODULE_PREFIX) and name in sys.modules:
            ray.cloudpickle.register_pickle_by_value(sys.modules[name])


_WORKER_EVALUATOR: dict[str, object] = {}  # in a Ray worker: the evaluator of the search it serves


def _evaluate_in_worker(shipped: list, widths: list[int], precisions: list[str]):
    """A Ray task: one candidate built and scored by the search's evaluator, deserialised once per worker."""
    import ray
    import torch

    key = shipped[0].hex()
    evaluator = _WORKER_EVALUATOR.get(key)
    if evaluator is None:
        evaluator = ray.get(shipped[0])
        resources = ray.get_runtime_context().get_assigned_resources()
        torch.set_num_threads(max(1, int(resources.get("CPU", 1))))
        if resources.get("GPU") and torch.cuda.is_available():
            evaluator.teacher = evaluator.teacher.to("cuda")
        _WORKER_EVALUATOR.clear()  # one search at a time per worker: a finished one's tensors are let go
        _WORKER_EVALUATOR[key] = evaluator
    return evaluator.compute(widths, precisions)
