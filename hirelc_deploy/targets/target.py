"""Targets: a device and runtime to deploy to, described by a TOML file (``catalog`` says where they are found)."""

from __future__ import annotations

import math

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from hirelc_agent.protocol import TOKEN_ENV
from hirelc_agent.timing import MeasureSettings

from ..errors import TargetError
from .backends import BACKEND_PRECISIONS, REMOTE_RUNTIMES

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Roofline:
    """What a roofline prediction needs to know of a GPU: dense peak throughput per precision (tera-ops/s),
    memory bandwidth, and two assumptions stated as numbers (see ``latency/roofline.py``)."""

    gpu: str
    peak_tops: dict[str, float]
    memory_bandwidth_gbs: float
    compute_efficiency: float = 0.5  # fraction of peak a convolution reaches
    launch_us: float = 2.0  # fixed cost of one fused kernel
    sparsity_2_4: bool = False  # the GPU's tensor cores run 2:4 structured sparsity


@dataclass(frozen=True)
class DeviceSettings:
    """Where a remote target's device is: the URL of the ``hirelc-agent`` on it, the environment variable holding
    its token (never the token itself: target files get shared), and how long to wait for it."""

    url: str
    token_env: str = TOKEN_ENV
    retry_s: float = 60.0  # how long an unreachable agent is retried, with backoff, before the run stops
    timeout_s: float = 3600.0  # longest one request (a whole profile's timing, say) may take


@dataclass(frozen=True)
class Target:
    """A deployment target: backend, provider, precisions, threading, batch and the width grid to profile."""

    name: str
    backend: str
    execution_provider: str
    precisions: tuple[str, ...]
    threads: int
    batch_size: int
    channel_multiple: int
    width_fractions: tuple[float, ...]
    description: str = ""
    input_shape: tuple[int, ...] | None = None  # (C, H, W); None = the model's own
    measure: MeasureSettings = field(default_factory=MeasureSettings)
    roofline: Roofline | None = None
    device: DeviceSettings | None = None  # None: this machine is the device
    # [measure] final_processes: fresh processes the exported engine is timed in for compress's verdict (None: the
    # backend's own number). Kept out of MeasureSettings, which the device agent times with and never needs it.
    final_processes: int | None = None
    path: str = ""

    def candidate_widths(self, full_width: int, prunable: bool = True, removable: bool = False, step: int = 1
                         ) -> list[int]:
        """Inner widths this target profiles for a block: each fraction of ``full_width`` rounded to the
        channel multiple (and to the block's ``step``: whole groups of a grouped convolution), at least one
        multiple, at most the full width. Fraction 0 in the grid means the block may be removed (width 0) where
        it is ``removable``."""
        removal = {0} if removable and 0.0 in self.width_fractions else set()
        if not prunable:
            return sorted({full_width} | removal)
        m = math.lcm(self.channel_multiple, step)
        widths = {min(full_width, max(m, m * round(f * full_width / m))) for f in self.width_fractions if f > 0}
        return sorted(widths | {full_width} | removal)

    def width_grid(self, blocks) -> list[list[int]]:
        """``candidate_widths`` of each block (``BlockInfo``s of a model): the widths a table holds for it."""
        return [self.candidate_widths(b.full_width, b.prunable, b.removable, b.step) for b in blocks]


_TOP_KEYS = {f.name for f in fields(Target)} - {"path", "final_processes"} | {"schema_version"}
_MEASURE_KEYS = {f.name for f in fields(MeasureSettings)} | {"final_processes"}
_ROOFLINE_KEYS = {f.name for f in fields(Roofline)}
_DEVICE_KEYS = {f.name for f in fields(DeviceSettings)}
_REQUIRED = {"name", "backend", "execution_provider", "precisions", "threads", "batch_size", "channel_multiple",
             "width_fractions"}


def _check_positive(path: Path, key: str, value: object, kind: type = int) -> None:
    if not isinstance(value, kind) or isinstance(value, bool) or value <= 0:
        raise TargetError(f"{path}: '{key}' must be a positive {kind.__name__}, got {value!r}")


def parse_target(path: Path) -> Target:
    """Read and validate a target TOML file: unknown keys and precisions the backend cannot run are errors."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TargetError(f"{path}: target file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TargetError(f"{path}: not valid TOML ({exc})") from None
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise TargetError(f"{path}: unknown key(s) {', '.join(unknown)}")
    missing = sorted(_REQUIRED - set(raw))
    if missing:
        raise TargetError(f"{path}: missing key(s) {', '.join(missing)}")
    if raw.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise TargetError(f"{path}: schema_version {raw['schema_version']} unsupported (expected {SCHEMA_VERSION})")
    backend = raw["backend"]
    if backend not in BACKEND_PRECISIONS:
        raise TargetError(f"{path}: unknown backend '{backend}' (choose from {', '.join(BACKEND_PRECISIONS)})")
    precisions = tuple(raw["precisions"])
    bad = [p for p in precisions if p not in BACKEND_PRECISIONS[backend]]
    if bad or not precisions:
        raise TargetError(f"{path}: backend {backend} cannot run precision(s) {', '.join(bad) or '(none given)'}")
    for key in ("threads", "batch_size", "channel_multiple"):
        _check_positive(path, key, raw[key])
    fractions = tuple(float(f) for f in raw["width_fractions"])
    if not fractions or any(not 0 <= f <= 1 for f in fractions):
        raise TargetError(f"{path}: 'width_fractions' must be a non-empty list of numbers in [0, 1] "
                          "(0 = the block may be removed)")
    measure_raw = dict(raw.get("measure", {}))
    unknown = sorted(set(measure_raw) - _MEASURE_KEYS)
    if unknown:
        raise TargetError(f"{path}: unknown key(s) in [measure]: {', '.join(unknown)}")
    final_processes = measure_raw.pop("final_processes", None)
    if final_processes is not None:
        _check_positive(path, "final_processes", final_processes)
    roofline = _parse_roofline(path, raw.get("roofline"), precisions)
    device = _parse_device(path, raw.get("device"), backend)
    shape = raw.get("input_shape")
    if shape is not None and (len(shape) != 3 or any(not isinstance(s, int) or s <= 0 for s in shape)):
        raise TargetError(f"{path}: 'input_shape' must be [C, H, W] with positive integers, got {shape!r}")
    return Target(
        name=raw["name"],
        backend=backend,
        execution_provider=raw["execution_provider"],
        precisions=precisions,
        threads=raw["threads"],
        batch_size=raw["batch_size"],
        channel_multiple=raw["channel_multiple"],
        width_fractions=fractions,
        description=raw.get("description", ""),
        input_shape=tuple(shape) if shape else None,
        measure=MeasureSettings(**measure_raw),
        roofline=roofline,
        device=device,
        final_processes=final_processes,
        path=str(path),
    )


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _parse_roofline(path: Path, raw: dict | None, precisions: tuple[str, ...]) -> Roofline | None:
    if raw is None:
        return None
    unknown = sorted(set(raw) - _ROOFLINE_KEYS)
    missing = sorted({"gpu", "peak_tops", "memory_bandwidth_gbs"} - set(raw))
    if unknown or missing:
        raise TargetError(f"{path}: [roofline] " + ("unknown key(s) " + ", ".join(unknown) if unknown
                                                     else "missing key(s) " + ", ".join(missing)))
    peaks = raw["peak_tops"]
    if not isinstance(peaks, dict):
        raise TargetError(f"{path}: [roofline] peak_tops must be a table of precision = tera-ops/s, got {peaks!r}")
    lacking = [p for p in precisions if not _is_number(peaks.get(p)) or peaks[p] <= 0]
    if lacking:
        raise TargetError(f"{path}: [roofline] peak_tops needs a positive figure for {', '.join(lacking)}")
    for key, ok, what in (("memory_bandwidth_gbs", lambda v: v > 0, "a positive number"),
                          ("compute_efficiency", lambda v: 0 < v <= 1, "a number in (0, 1]"),
                          ("launch_us", lambda v: v >= 0, "a non-negative number")):
        value = raw.get(key, 1.0)
        if not _is_number(value) or not ok(value):
            raise TargetError(f"{path}: [roofline] {key} must be {what}, got {value!r}")
    if not isinstance(raw.get("sparsity_2_4", False), bool):
        raise TargetError(f"{path}: [roofline] sparsity_2_4 must be true or false")
    return Roofline(**{**raw, "peak_tops": {k: float(v) for k, v in peaks.items()}})


def _parse_device(path: Path, raw: dict | None, backend: str) -> DeviceSettings | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise TargetError(f"{path}: [device] must be a table with url = \"http://HOST:PORT\"")
    unknown = sorted(set(raw) - _DEVICE_KEYS)
    if unknown or "url" not in raw:
        raise TargetError(f"{path}: [device] " + (f"unknown key(s) {', '.join(unknown)}" if unknown
                                                   else "needs url = \"http://HOST:PORT\" of its hirelc-agent"))
    url = raw["url"]
    if not isinstance(url, str) or not url.startswith(("http://", "https://")) or "://" == url[-3:]:
        raise TargetError(f"{path}: [device] url must be http://HOST:PORT or https://..., got {url!r}")
    if backend not in REMOTE_RUNTIMES:
        raise TargetError(f"{path}: [device]: remote {backend} targets are not supported (the agent times ONNX "
                          "Runtime only); run hirelc on the GPU machine itself")
    token_env = raw.get("token_env", TOKEN_ENV)
    if not isinstance(token_env, str) or not token_env.replace("_", "").isalnum():
        raise TargetError(f"{path}: [device] token_env must name an environment variable, got {token_env!r}")
    for key, low in (("retry_s", 0.0), ("timeout_s", 1.0)):
        value = raw.get(key, 1.0 if key == "timeout_s" else 0.0)
        if not _is_number(value) or value < low:
            raise TargetError(f"{path}: [device] {key} must be a number of seconds of at least {low:g}, "
                              f"got {value!r}")
    return DeviceSettings(url.rstrip("/"), token_env, **{k: float(raw[k]) for k in ("retry_s", "timeout_s")
                                                         if k in raw})
