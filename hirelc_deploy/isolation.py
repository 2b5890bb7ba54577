"""Run a measurement in a fresh process, away from the PyTorch work that came before it in this one.

ONNX Runtime timed in a process that has just trained or evaluated with PyTorch runs 10-15% slower than in a
fresh one (measured with ``tools/bench_policies.py``): PyTorch's thread pool and allocator state stay behind.
Every latency ``compress`` reports is therefore measured in a child process started with ``spawn``.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from typing import Callable, TypeVar

T = TypeVar("T")


def run_isolated(fn: Callable[..., T], *args, **kwargs) -> T:
    """``fn(*args, **kwargs)`` in a freshly spawned process; its exceptions are re-raised here."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(fn, *args, **kwargs).result()
