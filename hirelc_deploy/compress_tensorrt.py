"""The TensorRT side of ``hirelc compress`` (see ``compress.py`` for the stages they share).

A TensorRT target's table is used as it is, the search's best policy is exported without timing finalists,
and the summary is measured only where the engine could be built and timed on a GPU; on any other machine it is
the table's prediction, labelled PREDICTED in the verdict, the summary's ``latency_kind`` and the report.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .bench_tensorrt import bench_tensorrt
from .compress import CompressConfig, Stages, verdict
from .data import Normalize, load_images, open_dataset
from .errors import InputError
from .latency.table import LatencyTable
from .policy import Policy
from .runs import RunDirectory, read_json_object
from .search import SearchSpace
from .search.budget import Budget
from .targets import Target

log = logging.getLogger(__name__)


def uncalibrated_space(run: RunDirectory, table: LatencyTable, target: Target) -> SearchSpace:
    """A TensorRT target's search space: the table as it is (a GPU table is measured end to end with CUDA events
    and needs no correction for this machine; a predicted one cannot be corrected here)."""
    space = SearchSpace(table, target.precisions)
    run.write_json("calibration.json", {"factors": {}, "points": [],
                                        "skipped": "TensorRT target: the table is used as it is"})
    table.save(run.path("latency_table_calibrated.json"))
    return space


def tensorrt_result(config: CompressConfig, run: RunDirectory, stages: Stages, spec, target: Target,
                     budget: Budget, space: SearchSpace, policy: Policy, table_source: str, table_kind: str) -> dict:
    """Benchmark a TensorRT export (``bench_tensorrt``) and write the summary: measured where the engine was
    built and timed on the GPU, otherwise the table's prediction, labelled so in every field and the verdict."""
    stages.start("benchmarking the engine")
    if stages.reused("bench.json"):
        result = read_json_object(run.path("bench.json"), "benchmark record", InputError)
    else:
        test = load_images(open_dataset(Path(config.data), "test", limit_per_class=config.test_per_class))
        result = bench_tensorrt(run.path("artifacts"), target, test, Normalize(spec.mean, spec.std))
        run.write_json("bench.json", result)
    measured = result["measured_ms"] is not None
    uncompressed = result["uncompressed_ms"] if measured else space.uncompressed_ms
    latency = result["measured_ms"] if measured else policy.predicted_latency_ms
    budget_ms = budget.milliseconds(uncompressed)
    ratio = latency / budget_ms
    if measured:
        text = verdict(ratio)
    else:
        text = (("PREDICTED to meet the budget" if ratio <= 1.0 else
                 f"PREDICTED to MISS the budget by {100 * (ratio - 1):.1f}%")
                + f" ({table_kind} table; not measured: {result['not_measured']})")
    summary = {
        "model": config.model, "target": config.target, "strategy": config.strategy, "backend": "tensorrt",
        "latency_kind": "measured" if measured else "predicted", "table_kind": table_kind,
        "budget": budget.text, "budget_ms": budget_ms, "table": table_source, "table_drift": 1.0,
        "predicted_ms": policy.predicted_latency_ms, "predicted_uncompressed_ms": space.uncompressed_ms,
        "measured_ms": result["measured_ms"], "uncompressed_ms": result["uncompressed_ms"],
        "measured_rounds_ms": [], "uncompressed_rounds_ms": [],
        "speedup": result.get("speedup") if measured else space.uncompressed_ms / policy.predicted_latency_ms,
        "budget_ratio": ratio, "meets_budget": ratio <= 1.0, "verdict": text,
        "top1_before": result["top1_before"], "top1_after": result["top1_after"],
        "test_images": result["test_images"], "top1_through": result["top1_through"],
        "bytes_before": result["bytes_before"], "bytes_after": result["bytes_after"],
        "proxy_top1": policy.notes.get("proxy_top1"), "engine": result["engine"],
    }
    run.write_json("summary.json", summary)
    log.info("%s %.4f ms against a budget of %.4f ms: %s", summary["latency_kind"], latency, budget_ms, text)
    return summary
