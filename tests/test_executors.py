"""Executors and device leases on a local Ray instance started by the test (2 workers): the same search result
as the local executor, a killed worker retried with its evaluation recorded once, measurements on one device
never overlapping, and the one-line error without Ray."""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from hirelc_deploy.devices import NAMESPACE, device_key, leased_backend
from hirelc_deploy.jobs.compress import checkpointed_search
from hirelc_deploy.latency.table import load_table
from hirelc_deploy.progress import SilentReporter
from hirelc_deploy.records import CompressConfig
from hirelc_deploy.runs import RunDirectory
from hirelc_deploy.search.evaluate import Evaluator
from hirelc_deploy.search.executors import LocalExecutor, RayExecutor
from hirelc_deploy.search.run import run_search
from hirelc_deploy.targets import backend_of, parse_target

from .conftest import TINY_TARGET, fails, hirelc
from .ray_faults import DyingEvaluator

ROOT = Path(__file__).parent.parent  # the workers import tests.ray_faults from here


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray", reason="Ray is the optional extra: pip install 'hirelc-deploy[ray]'")
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield ray
    ray.shutdown()


def _fresh(shared: Evaluator, executor=None) -> Evaluator:
    return Evaluator(shared.teacher, shared.blocks, shared.input_shape, shared.data, shared.sensitivity, cache={},
                     executor=executor)


def _trace(outcome) -> list:
    return [(e.options, e.result.top1, e.result.agreement, e.result.kl) for e in outcome.history]


@pytest.mark.slow
def test_a_seed_finds_the_same_with_the_local_executor_and_two_ray_workers(ray_instance, tiny_problem):
    space, sensitivity, shared = tiny_problem
    budget = space.uncompressed_ms * 0.45
    local = run_search("hirelc", space, sensitivity, _fresh(shared, LocalExecutor()), budget, 6, seed=2)
    executor = RayExecutor()
    assert executor.workers == 2
    parallel = run_search("hirelc", space, sensitivity, _fresh(shared, executor), budget, 6, seed=2)
    assert len(local.history) == 6
    assert _trace(parallel) == _trace(local)
    assert parallel.best.options == local.best.options
    assert parallel.executor.startswith("ray") and local.executor.startswith("local")


@pytest.mark.slow
def test_a_worker_killed_mid_evaluation_is_retried_and_recorded_once(ray_instance, tiny_problem, tmp_path):
    space, sensitivity, shared = tiny_problem
    budget = space.uncompressed_ms * 0.45
    config = CompressConfig("resnet20", "w.th", "data", "cpu-ort-1t", "0.45x", strategy="random", evals=4, seed=4)
    marker = tmp_path / "killed"
    run = RunDirectory(tmp_path / "run")
    dying = DyingEvaluator(shared, marker, RayExecutor())
    outcome = checkpointed_search(config, run, space, sensitivity, dying, budget, SilentReporter())

    assert marker.exists() and int(marker.read_text()) != os.getpid()  # a worker, not this process, died
    lines = [json.loads(line) for line in run.path("candidates.jsonl").read_text().splitlines()]
    keys = [(tuple(line["widths"]), tuple(line["precisions"])) for line in lines]
    assert len(lines) == 4 and len(set(keys)) == 4
    local = run_search("random", space, sensitivity, _fresh(shared), budget, 4, seed=4)
    assert _trace(outcome) == _trace(local)


def _conv_graph(path: Path) -> Path:
    weights = helper.make_tensor("w", TensorProto.FLOAT, [16, 3, 3, 3], np.full(16 * 27, 0.01, np.float32))
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "conv",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 64, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 64, 64])], [weights])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _quick(name: str) -> str:
    """The tiny target under another name, without waiting for a quiet machine: these tests check leases, not
    timings."""
    return TINY_TARGET.replace('name = "tiny-cpu"', f'name = "{name}"').replace("max_wait_s = 2.0", "max_wait_s = 0")


@pytest.mark.slow
def test_measurements_on_one_device_never_overlap(ray_instance, tmp_path):
    graph = _conv_graph(tmp_path / "conv.onnx")
    targets = []
    for name in ("tiny-cpu", "tiny-cpu-b"):  # two targets, one device (this machine's CPU): one lease
        (tmp_path / f"{name}.toml").write_text(_quick(name))
        targets.append(parse_target(tmp_path / f"{name}.toml"))
    backends = [leased_backend(backend_of(t), t, ray_instance) for t in targets]
    assert type(backends[0]).__name__.startswith("Leased")
    timings = []

    def measure(backend, target):
        for _ in range(3):
            timings.append(backend.time_graphs({"conv": graph}, target)["conv"])

    threads = [threading.Thread(target=measure, args=pair) for pair in zip(backends, targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    node = ray_instance.get_runtime_context().get_node_id()
    assert device_key(targets[0], node) == device_key(targets[1], node)
    actor = ray_instance.get_actor(f"device:{device_key(targets[0], node)}", namespace=NAMESPACE)
    intervals = sorted(ray_instance.get(actor.history.remote()))
    assert len(timings) == 6 and all(t.median_ms > 0 for t in timings)
    assert len(intervals) == 6 and {name for _, _, name, _ in intervals} == {"tiny-cpu", "tiny-cpu-b"}
    assert all(end <= following[0] for (_, end, _, _), following in zip(intervals, intervals[1:]))


@pytest.mark.slow
def test_profile_targets_on_ray_measures_each_target_through_its_device_lease(ray_instance, monkeypatch, capsys,
                                                                             tmp_path):
    names = []
    for name in ("fleet-a", "fleet-b", "single"):
        path = tmp_path / f"{name}.toml"
        path.write_text(_quick(name))
        names.append(str(path))
    monkeypatch.chdir(tmp_path)
    # One width per block: the test checks where the timing ran, not the table.
    code, out, err = hirelc(monkeypatch, capsys, "profile", "--model", "resnet20", "--targets", ",".join(names[:2]),
                            "--fractions", "1", "--executor", "ray", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [row["target"] for row in rows] == ["fleet-a", "fleet-b"]
    for row in rows:
        table = load_table(Path(row["table"]))
        assert table.target == row["target"] and table.kind == "measured"
        assert (Path(row["run_dir"]) / "report.html").is_file()
    node = ray_instance.get_runtime_context().get_node_id()
    actor = ray_instance.get_actor(f"device:cpu:{node}", namespace=NAMESPACE)
    measured = {name for _, _, name, _ in ray_instance.get(actor.history.remote())}
    assert {"fleet-a", "fleet-b"} <= measured and "single" not in measured
    # One --target with Ray is measured here, through the same lease.
    code, _, err = hirelc(monkeypatch, capsys, "profile", "--model", "resnet20", "--target", names[2],
                          "--fractions", "1", "--executor", "ray", "--json")
    assert code == 0, err
    assert "single" in {name for _, _, name, _ in ray_instance.get(actor.history.remote())}


def test_profile_targets_refuses_flags_of_one_target(monkeypatch, capsys):
    line = fails(monkeypatch, capsys, "profile", "--model", "resnet20", "--targets", "cpu-ort-1t,cpu-ort-b32",
                 "--out", "t.json")
    assert line == "error: --out: applies to one --target, not to --targets"
    line = fails(monkeypatch, capsys, "profile", "--model", "resnet20")
    assert line == "error: --target/--targets: give exactly one of them"


def test_executor_ray_without_ray_is_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    line = fails(monkeypatch, capsys, "compress", "--model", "resnet20", "--weights", "w.th", "--data",
                 str(tmp_path), "--target", "cpu-ort-1t", "--latency-budget", "0.5x", "--executor", "ray")
    assert line == "error: --executor ray: Ray is not installed; install it with pip install 'hirelc-deploy[ray]'"
