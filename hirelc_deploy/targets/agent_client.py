"""The host's side of a remote device: talks to the ``hirelc-agent`` a target's ``[device]`` names.

Models are uploaded once (content-addressed by sha256) and timed on the device with the shared protocol
(``hirelc_agent.timing``); progress comes back line by line. An agent that cannot be reached (not started yet,
killed, restarting) is retried with backoff for the target's ``retry_s`` before the run stops with one line
naming the device; a measurement cut short is repeated whole, re-uploading whatever a restarted agent lost. An
agent that comes back as a different device (its runtime upgraded meanwhile) stops the run: timings from before
and after would be mixed.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import http.client
import json
import logging
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterator, Mapping

from hirelc_agent.ort_measure import NodeTimes
from hirelc_agent.protocol import (BURST, CLIENT_HEADER, DEVICE_PATH, ERROR, MODELS_PATH, PROFILE_PATH,
                                   PROTOCOL_VERSION, QUEUED, RESULT, TIME_PATH)
from hirelc_agent.timing import Timing

from ..errors import DeviceError
from .target import DeviceSettings, Target

log = logging.getLogger(__name__)

# What identifies the device: a change in any of these between two answers of one agent is refused mid-run.
IDENTITY_KEYS = ("cpu_model", "cpu_flags", "cpu_count", "onnxruntime_version", "tensorrt_version", "gpu")


class _Unreachable(Exception):
    """The agent did not answer (refused, reset, cut short): worth retrying."""


class AgentClient:
    """One agent, as one target reaches it: its token from the environment, the models it holds from us."""

    def __init__(self, device: DeviceSettings, target_name: str):
        self.device, self.where = device, f"device {device.url} (target {target_name})"
        self.token = os.environ.get(device.token_env, "").strip()
        if not self.token:
            raise DeviceError(f"{self.where}: ${device.token_env} is not set; export the agent's token in it")
        self.client = f"{getpass.getuser()}@{socket.gethostname()} pid {os.getpid()}"
        self.sent: set[str] = set()
        self._described: dict | None = None

    def describe(self) -> dict:
        """The agent's description of its device (asked once per client)."""
        if self._described is None:
            described = self._retrying(lambda: self._json("GET", DEVICE_PATH))
            if described.get("protocol") != PROTOCOL_VERSION:
                raise DeviceError(f"{self.where}: the agent speaks protocol {described.get('protocol')}, this hirelc "
                                  f"{PROTOCOL_VERSION}; install the hirelc-agent of this checkout on the device")
            self._described = described
        return self._described

    def time(self, models: Mapping[str, Path], target: Target, on_burst: Callable[[], None] | None = None
             ) -> dict[str, Timing]:
        """Each model timed on the device, interleaved, in fresh sessions configured as ``target``."""
        shas = {name: self.upload(path) for name, path in models.items()}
        body = {"models": shas, "session": _session(target), "measure": vars(target.measure)}
        result = self._measure(TIME_PATH, body, dict(zip(shas.values(), models.values())), on_burst)
        return {name: Timing(**result["timings"][name]) for name in models}

    def profile(self, path: Path, target: Target, runs: int, warmup: int) -> NodeTimes:
        """Per-node times of one model on the device (ONNX Runtime's profiler) and the graph they ran in."""
        sha = self.upload(path)
        body = {"model": sha, "session": _session(target), "runs": runs, "warmup": warmup}
        result = self._measure(PROFILE_PATH, body, {sha: path})
        return NodeTimes({k: float(v) for k, v in result["times_ms"].items()}, base64.b64decode(result["optimized"]))

    def upload(self, path: Path) -> str:
        """Send a model unless this client sent it already; its sha256."""
        data = Path(path).read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        if sha not in self.sent:
            limit = self.describe()["limits"]["max_upload_bytes"]
            if len(data) > limit:
                raise DeviceError(f"{self.where}: {path} is {len(data)} bytes, over the agent's limit of {limit} "
                                  "(start it with a larger --max-upload-mb)")
            self._retrying(lambda: self._json("PUT", MODELS_PATH + sha, data))
            self.sent.add(sha)
        return sha

    def _measure(self, path: str, body: dict, models: Mapping[str, Path],
                 on_burst: Callable[[], None] | None = None) -> dict:
        """POST a measurement and follow its lines to the result; models the agent lost are sent again."""
        def attempt() -> dict:
            try:
                return self._follow(path, body, on_burst)
            except _Missing as missing:
                self.sent.difference_update(missing.shas)
                for sha in missing.shas:
                    self.upload(models[sha])
            try:
                return self._follow(path, body, on_burst)
            except _Missing:
                raise DeviceError(f"{self.where}: the agent dropped models as soon as they were sent; one request "
                                  f"needs {len(models)} (start it with a larger --max-models)") from None
        return self._retrying(attempt)

    def _follow(self, path: str, body: dict, on_burst: Callable[[], None] | None) -> dict:
        """The result of one measurement request, reporting its bursts as they come."""
        with self._open("POST", path, json.dumps(body).encode()) as response:
            for line in _read_lines(response):
                if QUEUED in line and line[QUEUED]:
                    log.info("%s: %d measurement(s) ahead of ours; waiting", self.where, line[QUEUED])
                elif BURST in line and on_burst:
                    on_burst()
                elif ERROR in line:
                    raise DeviceError(f"{self.where}: the agent could not measure: {line[ERROR]}")
                elif RESULT in line:
                    return line[RESULT]
        raise _Unreachable("the agent stopped answering mid-measurement")

    def _json(self, method: str, path: str, data: bytes | None = None) -> dict:
        with self._open(method, path, data) as response:
            return json.loads(response.read())

    def _open(self, method: str, path: str, data: bytes | None):
        request = urllib.request.Request(self.device.url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", CLIENT_HEADER: self.client,
            "Content-Type": "application/octet-stream" if method == "PUT" else "application/json"})
        try:
            return urllib.request.urlopen(request, timeout=self.device.timeout_s)
        except urllib.error.HTTPError as exc:
            raise self._refusal(exc) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise _Unreachable(getattr(exc, "reason", None) or exc) from None

    def _refusal(self, exc: urllib.error.HTTPError) -> Exception:
        try:
            answer = json.loads(exc.read())
        except (ValueError, OSError):
            answer = {}
        if exc.code == 404 and answer.get("missing"):
            return _Missing(answer["missing"])
        if exc.code == 401:
            return DeviceError(f"{self.where}: the agent refused our token (401); check ${self.device.token_env}")
        return DeviceError(f"{self.where}: the agent answered {exc.code}: {answer.get('error', exc.reason)}")

    def _retrying(self, call: Callable[[], dict]) -> dict:
        """``call()``, retried with backoff while the agent is unreachable, for at most ``retry_s``."""
        deadline, pause, failed = None, 0.5, None
        while True:
            try:
                result = call()
            except _Unreachable as exc:
                failed = exc
                deadline = deadline or time.monotonic() + self.device.retry_s
                if time.monotonic() >= deadline:
                    raise DeviceError(f"{self.where}: unreachable for {self.device.retry_s:g} s ({exc}); is "
                                      "hirelc-agent running there?") from None
                log.warning("%s: unreachable (%s); retrying in %.1f s", self.where, exc, pause)
                time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
                pause = min(2 * pause, 5.0)
                continue
            if failed is not None and self._described is not None:
                self._check_same_device()
            return result

    def _check_same_device(self) -> None:
        before, self._described = self._described, None
        now = self.describe()
        changed = [f"{k}: {before.get(k)!r} != {now.get(k)!r}" for k in IDENTITY_KEYS if before.get(k) != now.get(k)]
        if changed:
            raise DeviceError(f"{self.where}: came back as a different device ({'; '.join(changed)}); timings from "
                              "before and after would be mixed")
        log.info("%s: reachable again, same device", self.where)


def _read_lines(response) -> Iterator[dict]:
    """The JSON lines of a streamed answer; a connection cut mid-answer is ``_Unreachable``."""
    try:
        for raw in response:
            yield json.loads(raw)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise _Unreachable(f"the answer was cut short ({type(exc).__name__})") from None


class _Missing(Exception):
    def __init__(self, shas):
        super().__init__(f"{len(shas)} model(s) missing")
        self.shas = list(shas)


def _session(target: Target) -> dict:
    return {"execution_provider": target.execution_provider, "threads": target.threads}
