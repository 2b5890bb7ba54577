"""``hirelc profile --targets a,b,c``: one model profiled on several devices.

With the local executor the targets are profiled one after another in this process. With Ray each *device* gets
one task, and the tasks run at once: the targets of one device (``cpu-ort-1t`` and ``cpu-ort-b32`` on one
machine) one after another in it, every timing through the device's lease (``devices.py``). A task profiling
this machine's own CPU asks Ray for every CPU of this node, so nothing else Ray runs (another device's graph
building, a search's evaluations) competes with its timing; tasks for remote agents ask for one CPU each, since
their devices are elsewhere and they mostly wait on them. All tasks run on this node: the tables and run
directories are written where the user looks for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..devices import device_key, leased_backend
from ..errors import HirelcError, InputError
from ..latency.table import default_table_path
from ..models import as_spec
from ..progress import Reporter, SilentReporter
from ..records import ModelRef
from ..runs import default_run_dir
from ..search.executors import Executor, LocalExecutor
from ..settings import tables_dir
from ..targets import Target, backend_of, load_target
from .profile import ProfileResult, profile


def profile_fleet(model: str | ModelRef, targets: Sequence[str | Target], *, executor: Executor | None = None,
                  validate_count: int = 0, fractions: Sequence[float] | None = None, seed: int = 0,
                  runs: Path | None = None, reporter: Reporter | None = None) -> list[ProfileResult]:
    """Profile ``model`` on every target (tables stored as by ``profile``; one run directory per target, under
    ``runs`` or ``runs/``), on several devices at once with Ray; results in the order of ``targets``."""
    reporter = reporter or SilentReporter()
    executor = executor or LocalExecutor()
    loaded = [t if isinstance(t, Target) else load_target(t) for t in targets]
    names = [t.name for t in loaded]
    if len(set(names)) != len(names):
        raise InputError(f"--targets: {', '.join(sorted({n for n in names if names.count(n) > 1}))} given twice")
    spec = as_spec(model)
    for target in loaded:
        reason = backend_of(target).unavailable()
        if reason:
            raise InputError(f"--targets: {target.name} cannot be measured from this machine: {reason}")
    plans = [(t, default_table_path(tables_dir(), spec.key, t.name),
              (runs / default_run_dir("profile", spec.key, t.name).name) if runs
              else default_run_dir("profile", spec.key, t.name)) for t in loaded]
    reporter.phase(f"profiling {spec.name} on {len(loaded)} targets ({executor.describe()})", len(loaded))
    ray = getattr(executor, "ray", None)
    if ray is None:
        results = []
        for target, out, run_dir in plans:
            results.append(profile(model, target, out=out, validate_count=validate_count, fractions=fractions,
                                   seed=seed, run_dir=run_dir))
            reporter.advance(detail=target.name)
        return results
    return _on_ray(ray, model, plans, validate_count, fractions, seed, reporter)


def _on_ray(ray, model: str | ModelRef, plans: list, validate_count: int, fractions, seed: int,
            reporter: Reporter) -> list[ProfileResult]:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node = ray.get_runtime_context().get_node_id()
    here = NodeAffinitySchedulingStrategy(node, soft=False)
    node_cpus = next(n["Resources"].get("CPU", 1) for n in ray.nodes() if n["NodeID"] == node)
    groups: dict[str, list] = {}
    for plan in plans:
        groups.setdefault(device_key(plan[0], node), []).append(plan)
    task = ray.remote(_profile_device)
    pending = {task.options(num_cpus=1 if key.startswith("agent:") else node_cpus, scheduling_strategy=here)
               .remote(model, group, validate_count, fractions, seed): key for key, group in groups.items()}
    by_target: dict[str, ProfileResult] = {}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        try:
            group_results = ray.get(done[0])
        except ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, HirelcError):  # the device's one-line error, not Ray's traceback around it
                raise exc.cause from None
            raise
        by_target.update((r.table.target, r) for r in group_results)
        reporter.advance(len(group_results), detail=pending.pop(done[0]))
    return [by_target[target.name] for target, _, _ in plans]


def _profile_device(model: str | ModelRef, plans: list, validate_count: int, fractions, seed: int
                    ) -> list[ProfileResult]:
    """A Ray task: the targets of one device profiled one after another, every timing through its lease."""
    import ray

    return [profile(model, target, out=out, validate_count=validate_count, fractions=fractions, seed=seed,
                    run_dir=run_dir, backend=leased_backend(backend_of(target), target, ray))
            for target, out, run_dir in plans]
