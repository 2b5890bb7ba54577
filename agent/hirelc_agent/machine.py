"""What a device is: CPU model and the flags that change ONNX Runtime's kernels, cores, memory, OS, runtimes.

``hirelc`` fingerprints its own machine with ``cpu_info``; an agent reports ``describe()`` so a host fingerprints
the device the same way.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import shutil
import subprocess

# CPU features that change which kernels ONNX Runtime picks (and so the latencies).
RELEVANT_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni",
                  "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16",
                  "asimd", "asimddp", "i8mm", "sve", "bf16")  # the last four: ARM (dot product, int8 matmul)


@functools.cache
def cpu_info() -> tuple[str, tuple[str, ...]]:
    """This machine's CPU model name and the CPU features that change ONNX Runtime's kernels (read once)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model") and model in ("", platform.machine(), platform.processor()):
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model, tuple(f for f in RELEVANT_FLAGS if f in flags)


def memory_bytes() -> int:
    """Physical memory (0 where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def tensorrt_version() -> str:
    """The installed TensorRT's version, read from its package metadata (TensorRT is not imported), or ""."""
    for name in ("tensorrt", "tensorrt-cu12", "tensorrt-cu13"):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return ""


def gpu_name() -> str:
    """The first NVIDIA GPU's name from ``nvidia-smi`` (a fixed query of the driver's own tool), or ""."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return ""
    try:
        done = subprocess.run([tool, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True,
                              timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else ""


def describe() -> dict:
    """Everything a host needs to fingerprint this device and to know what it can run."""
    import onnxruntime

    model, flags = cpu_info()
    return {
        "cpu_model": model,
        "cpu_flags": list(flags),
        "cpu_count": os.cpu_count() or 1,
        "memory_bytes": memory_bytes(),
        "os": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "python": platform.python_version(),
        "hostname": platform.node(),
        "onnxruntime_version": onnxruntime.__version__,
        "execution_providers": list(onnxruntime.get_available_providers()),
        "tensorrt_version": tensorrt_version(),
        "gpu": gpu_name(),
    }
