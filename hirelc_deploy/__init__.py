"""hirelc-deploy: profile devices, compress CNNs for latency budgets, export engines measured on the target.

The public Python API, with the same defaults as the CLI (every ``hirelc`` command is one of these calls)::

    import hirelc_deploy as hd

    result = hd.profile("resnet20", "cpu-ort-1t", validate_count=4)          # -> ProfileResult (table, run dir)
    run = hd.compress("resnet20", "W.th", "cifar10/", "cpu-ort-1t", "0.5x")  # -> CompressResult (summary, ...)
    manifest = hd.export("resnet20", "W.th", "cifar10/", "cpu-ort-1t", "policy.json", "out/")
    measured = hd.bench("out/model.onnx", "cpu-ort-1t", baseline="out/baseline_fp32.onnx")
    mine = hd.ModelRef("my_nets.py:build", {"width": 16}, [3, 32, 32])     # your own model: pass it as ``model``
    blocks = hd.resolve_model(mine).discovery                                 # -> what ``hirelc inspect`` shows
    gpu = hd.DataOptions(device="cuda", workers=8)                           # ``data_options=`` of compress/export

Attributes are imported on first use so that ``import hirelc_deploy`` stays cheap.
"""

from importlib import import_module

__version__ = "0.1.0"

_API = {
    # the jobs
    "profile": "jobs.profile",
    "ProfileResult": "jobs.profile",
    "compress": "jobs.compress",
    "resume": "jobs.compress",
    "CompressResult": "jobs.compress",
    "export": "jobs.export",
    "bench": "jobs.bench",
    # the stages one by one
    "measure_sensitivity": "pipeline",
    "plan_uniform": "pipeline",
    "run_search": "search.run",
    "validate": "latency",
    # the records and nouns they exchange
    "CompressConfig": "records",
    "CompressSummary": "records",
    "BenchResult": "records",
    "Budget": "budget",
    "parse_budget": "budget",
    "LatencyTable": "latency",
    "load_table": "latency",
    "Policy": "policy",
    "load_policy": "policy",
    "Precision": "precision",
    "Target": "targets",
    "load_target": "targets",
    "available_targets": "targets",
    "get_backend": "targets",
    "get_model_spec": "models",
    "resolve_model": "models",
    "ModelRef": "records",
    "DataOptions": "records",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        return getattr(import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module 'hirelc_deploy' has no attribute {name!r}")
