"""The agent's HTTP server: refuses requests without the token, keeps uploaded models, measures one at a time.

Measurements run in one worker thread, so two clients never time on the device at once: a second request waits
(its first line says how many are ahead) and runs when the first is done, in arrival order. Uploads are checked in
that thread too (checking loads the model, which would disturb a measurement running at the same time). Every
measurement opens fresh ONNX Runtime sessions in this process, which never imports PyTorch. Each request is logged
with who asked (address and the client's ``X-Hirelc-Client``), what and the outcome.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hmac
import json
import logging
import time
from dataclasses import asdict, fields
from typing import Callable

import onnxruntime as ort
import tornado.iostream
import tornado.web

from . import __version__
from .machine import describe
from .ort_measure import MeasureError, SessionSettings, make_session, node_times, time_sessions
from .protocol import (BURST, CLIENT_HEADER, DEVICE_PATH, ERROR, MODELS_PATH, PROFILE_PATH, PROTOCOL_VERSION,
                       QUEUED, RESULT, STARTED, TIME_PATH, is_sha256)
from .store import ModelStore, RefusedModel
from .timing import MeasureSettings

log = logging.getLogger("hirelc_agent")


class Cancelled(Exception):
    """The client went away: the rest of its measurement would be timed for nobody."""


class Agent:
    """The state one agent process serves from: token, models, the measurement queue and the device."""

    def __init__(self, token: str, store: ModelStore, max_upload_bytes: int):
        self.token, self.store, self.max_upload_bytes = token.encode(), store, max_upload_bytes
        self.device = describe()
        self.worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="measure")
        self.waiting = 0  # measurements queued or running
        self.measured = 0

    def allowed(self, header: str | None) -> bool:
        given = (header or "").removeprefix("Bearer ").encode()
        return hmac.compare_digest(given, self.token)


class _Handler(tornado.web.RequestHandler):
    agent: Agent

    def initialize(self, agent: Agent) -> None:
        self.agent = agent

    def prepare(self) -> None:
        if not self.agent.allowed(self.request.headers.get("Authorization")):
            self.note("refused: missing or wrong token")
            self.set_status(401)
            self.finish({"error": "missing or wrong token (Authorization: Bearer ...)"})

    def note(self, what: str) -> None:
        log.info("%s %s %s: %s", self.request.remote_ip, self.request.headers.get(CLIENT_HEADER, "?"),
                 f"{self.request.method} {self.request.path}", what)

    def fail(self, status: int, message: str, **extra) -> None:
        self.note(f"{status} {message}")
        self.set_status(status)
        self.finish({"error": message, **extra})

    def write_error(self, status_code: int, **kwargs) -> None:
        self.finish({"error": self._reason})


class DeviceHandler(_Handler):
    def get(self) -> None:
        self.note("device")
        self.finish({**self.agent.device, "agent_version": __version__, "protocol": PROTOCOL_VERSION,
                     "limits": {"max_upload_bytes": self.agent.max_upload_bytes,
                                "max_models": self.agent.store.max_models},
                     "models_held": len(self.agent.store), "measurements": self.agent.measured})


@tornado.web.stream_request_body
class ModelHandler(_Handler):
    """``PUT /v1/models/SHA256``: the body is refused from its headers alone when it is too large."""

    def prepare(self) -> None:
        super().prepare()
        if self._finished:
            return
        self.chunks: list[bytes] = []
        length = self.request.headers.get("Content-Length")
        if length is None or not length.isdigit():
            return self.fail(411, "Content-Length is required")
        if int(length) > self.agent.max_upload_bytes:
            return self.fail(413, f"model of {int(length)} bytes exceeds the agent's limit of "
                                  f"{self.agent.max_upload_bytes} bytes (--max-upload-mb)")
        self.request.connection.set_max_body_size(self.agent.max_upload_bytes)

    def data_received(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    async def put(self, sha: str) -> None:
        if not is_sha256(sha):
            return self.fail(400, "models are named by the sha256 of their bytes (64 lowercase hex digits)")
        data = b"".join(self.chunks)
        try:
            await asyncio.wrap_future(self.agent.worker.submit(self.agent.store.add, sha, data))
        except RefusedModel as exc:
            return self.fail(400, f"upload refused: {exc}")
        self.note(f"stored model {sha[:12]} ({len(data)} bytes)")
        self.set_status(201)
        self.finish({"model": sha, "bytes": len(data)})


class _MeasureHandler(_Handler):
    """A measurement: queued behind the others, run in the one worker thread, answered as JSON lines."""

    def on_connection_close(self) -> None:
        self.gone = True

    def request_json(self) -> dict:
        try:
            body = json.loads(self.request.body or b"{}")
        except json.JSONDecodeError:
            raise ValueError("the request body is not JSON") from None
        if not isinstance(body, dict):
            raise ValueError("the request body must be a JSON object")
        return body

    def session_settings(self, body: dict) -> SessionSettings:
        raw = body.get("session") or {}
        provider, threads = raw.get("execution_provider"), raw.get("threads")
        if provider not in ort.get_available_providers():
            raise ValueError(f"execution provider {provider!r} is not available here "
                             f"(available: {', '.join(ort.get_available_providers())})")
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        return SessionSettings(provider, threads)

    async def measure(self, models: list[str], what: str, job: Callable[[Callable[[], None]], dict]) -> None:
        """Run ``job(on_burst)`` when the device is free, streaming progress and then its result."""
        missing = self.agent.store.missing(models)
        if missing:
            return self.fail(404, "models not held by the agent; upload them", missing=missing)
        self.gone = False
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue = asyncio.Queue()
        self.set_header("Content-Type", "application/x-ndjson")

        def on_burst() -> None:
            if self.gone:
                raise Cancelled()
            loop.call_soon_threadsafe(lines.put_nowait, {BURST: 1})

        def run() -> dict:
            began = time.monotonic()
            loop.call_soon_threadsafe(lines.put_nowait, {STARTED: began})
            result = job(on_burst)
            return {**result, STARTED: began, "finished": time.monotonic()}

        ahead, self.agent.waiting = self.agent.waiting, self.agent.waiting + 1
        future = asyncio.wrap_future(self.agent.worker.submit(run))
        await self.send({QUEUED: ahead})
        arrived = time.monotonic()
        try:
            while not future.done():
                getter = asyncio.ensure_future(lines.get())
                await asyncio.wait({getter, future}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    await self.send(getter.result())
                else:
                    getter.cancel()
            while not lines.empty():
                await self.send(lines.get_nowait())
            result = future.result()
            self.agent.measured += 1
            self.note(f"{what}: done in {time.monotonic() - arrived:.1f} s (queued and measured)")
            await self.send({RESULT: result})
        except Cancelled:
            self.note(f"{what}: cancelled, the client went away")
        except (MeasureError, KeyError, ValueError, RuntimeError, ort.capi.onnxruntime_pybind11_state.Fail) as exc:
            self.note(f"{what}: failed: {exc}")
            await self.send({ERROR: str(exc).strip().splitlines()[0][:300] if str(exc).strip() else repr(exc)})
        finally:
            self.agent.waiting -= 1
        if not self.gone:
            self.finish()

    async def send(self, line: dict) -> None:
        if self.gone:
            return
        self.write(json.dumps(line) + "\n")
        try:
            await self.flush()
        except tornado.iostream.StreamClosedError:
            self.gone = True


class TimeHandler(_MeasureHandler):
    """``POST /v1/time``: models (name -> sha256) timed interleaved in fresh sessions."""

    async def post(self) -> None:
        try:
            body = self.request_json()
            settings = self.session_settings(body)
            models = dict(body.get("models") or {})
            known = {f.name for f in fields(MeasureSettings)}
            measure = MeasureSettings(**{k: v for k, v in (body.get("measure") or {}).items() if k in known})
        except (ValueError, TypeError) as exc:
            return self.fail(400, str(exc))
        if not models or not all(isinstance(s, str) and is_sha256(s) for s in models.values()):
            return self.fail(400, "models must map names to sha256 digests")

        def job(on_burst):
            sessions = {name: make_session(self.agent.store.path(sha), settings) for name, sha in models.items()}
            timings = time_sessions(sessions, measure, on_burst)
            return {"timings": {name: asdict(t) for name, t in timings.items()}}

        await self.measure(list(models.values()), f"time {len(models)} model(s) on {settings.execution_provider} "
                                                  f"x{settings.threads}", job)


class ProfileHandler(_MeasureHandler):
    """``POST /v1/profile``: one model's per-node times from ONNX Runtime's profiler, with its optimised graph."""

    async def post(self) -> None:
        try:
            body = self.request_json()
            settings = self.session_settings(body)
            sha, runs, warmup = body.get("model"), body.get("runs"), body.get("warmup")
            if not isinstance(sha, str) or not is_sha256(sha):
                raise ValueError("model must be a sha256 digest")
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (runs, warmup)) or runs < 1:
                raise ValueError("runs (>= 1) and warmup (>= 0) must be integers")
        except (ValueError, TypeError) as exc:
            return self.fail(400, str(exc))

        def job(on_burst):
            times = node_times(self.agent.store.path(sha), settings, runs, warmup)
            return {"times_ms": times.times_ms, "optimized": base64.b64encode(times.optimized).decode("ascii")}

        await self.measure([sha], f"profile {sha[:12]}", job)


def make_app(agent: Agent) -> tornado.web.Application:
    """The agent's routes."""
    return tornado.web.Application([
        (DEVICE_PATH, DeviceHandler, {"agent": agent}),
        (MODELS_PATH + r"([^/]+)", ModelHandler, {"agent": agent}),
        (TIME_PATH, TimeHandler, {"agent": agent}),
        (PROFILE_PATH, ProfileHandler, {"agent": agent}),
    ], default_handler_class=_NotFound, default_handler_args={"agent": agent})


class _NotFound(_Handler):
    def prepare(self) -> None:
        super().prepare()
        if not self._finished:
            self.fail(404, f"no such endpoint: {self.request.method} {self.request.path}")
