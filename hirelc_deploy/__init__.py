"""hirelc-deploy: profile devices, compress CNNs for latency budgets, export engines measured on the target.

The public Python API, with the same defaults as the CLI::

    from hirelc_deploy import load_target, profile, validate, compress, CompressConfig, export_policy, bench

Attributes are imported on first use so that ``import hirelc_deploy`` stays cheap.
"""

from importlib import import_module

__version__ = "0.1.0"

_API = {
    "profile": "latency",
    "validate": "latency",
    "load_table": "latency",
    "LatencyTable": "latency",
    "Policy": "policy",
    "load_policy": "policy",
    "compute_sensitivity": "sensitivity",
    "export_policy": "pipeline",
    "prepare_data": "pipeline",
    "load_model": "pipeline",
    "bench": "bench",
    "compress": "compress",
    "CompressConfig": "compress",
    "run_search": "search.run",
    "load_target": "targets",
    "get_model_spec": "models",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        return getattr(import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module 'hirelc_deploy' has no attribute {name!r}")
