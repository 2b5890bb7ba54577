"""Devices as Ray actors: one actor per measured device holds its lease, so two measurements never overlap there.

With ``--executor ray`` every timing of a target (``time_graphs``, ``time_graphs_fresh``, ``node_profile``,
``bench_export``: the methods every backend's profiling, calibration, finalists, benchmark and verdict time
through, and the ones the remote backend sends to its agent) runs inside the actor of the target's *device*,
one call at a time (``max_concurrency=1``). A device is what is timed, not the target file: ``cpu-ort-1t`` and
``cpu-ort-b32`` on one machine are one device and share one lease; a remote target's device is its agent's URL.
The actors are named and detached in the ``hirelc`` namespace, so several runs on one Ray cluster (two
``compress`` runs, a ``profile --targets`` beside them) queue on the same lease. Everything else (building
graphs, quantizing) stays in the caller; ``bench_export`` scores top-1 inside the lease, since that work runs on
the device's own CPU when the device is this machine.

Actors of local devices are pinned to the caller's node (its CPU is the device, and the graphs it times are
its files); a remote device's actor is pinned there too, since it reads the same files before sending them.
On one machine, the evaluations of a search never run while that search measures (compress's stages follow
each other); the lease keeps *other* runs' measurements off the device meanwhile.
"""

from __future__ import annotations

import inspect
import time

from .targets import Backend, Target, backend_of

NAMESPACE = "hirelc"
# bench_export whole: it times in a fresh process of its own (which could not reach the actor) and scores top-1 on
# this node's CPU, which would disturb another run's timing of this CPU.
LEASED_METHODS = ("time_graphs", "time_graphs_fresh", "node_profile", "bench_export")
# Progress callbacks cannot cross into the actor's process: the caller's bar jumps when the measurement ends.
_CALLBACKS = {"on_burst", "progress"}


def device_key(target: Target, node_id: str) -> str:
    """What the lease is held on: the agent's URL for a remote target, this node's CPU otherwise."""
    return f"agent:{target.device.url}" if target.device is not None else f"cpu:{node_id}"


class DeviceLease:
    """The actor of one device: runs the timing methods of a target's backend, one call at a time, and keeps
    when each ran (so a test, or a user, can see that measurements never overlapped)."""

    def __init__(self, key: str):
        self.key = key
        self.intervals: list[tuple[float, float, str, str]] = []  # (start, end, target, method)

    def measure(self, target: Target, method: str, args: tuple, kwargs: dict):
        """``backend_of(target).method(*args, **kwargs)`` while holding the device."""
        start = time.time()
        try:
            return getattr(backend_of(target), method)(*args, **kwargs)
        finally:
            self.intervals.append((start, time.time(), target.name, method))

    def history(self) -> list[tuple[float, float, str, str]]:
        """Every measurement this lease ran: (start, end, target, method), in order."""
        return list(self.intervals)


def lease_actor(ray, target: Target):
    """The device actor for ``target``, created on this node the first time any run on the cluster asks."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node = ray.get_runtime_context().get_node_id()
    key = device_key(target, node)
    actor = ray.remote(DeviceLease).options(
        name=f"device:{key}", namespace=NAMESPACE, get_if_exists=True, lifetime="detached", max_concurrency=1,
        num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
    return actor.remote(key)


def leased_backend(backend: Backend, target: Target, ray) -> Backend:
    """``backend`` as it is without Ray (``ray`` None: the local executor); with Ray, the same backend whose timing
    methods run in the device's actor (a subclass, so the backend's own methods that time through them are
    leased too)."""
    if ray is None:
        return backend
    actor = lease_actor(ray, target)
    cls = type(backend)

    def leased(method: str):
        signature = inspect.signature(getattr(cls, method))

        def call(self, *args, **kwargs):
            bound = signature.bind(self, *args, **kwargs)
            for name in _CALLBACKS & bound.arguments.keys():
                bound.arguments[name] = None
            return ray.get(actor.measure.remote(target, method, bound.args[1:], bound.kwargs))
        return call

    subclass = type(f"Leased{cls.__name__}", (cls,), {m: leased(m) for m in LEASED_METHODS})
    instance = subclass.__new__(subclass)
    instance.__dict__.update(backend.__dict__)
    return instance
