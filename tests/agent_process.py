"""A real ``hirelc-agent`` in a subprocess on localhost, with PyTorch and the onnx package blocked from import."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

# Every test agent runs with these modules made unimportable: an agent that needed one would fail its tests.
BLOCKED = ("torch", "onnx", "hirelc_deploy")
_LAUNCH = ("import sys\n"
           f"for name in {BLOCKED!r}:\n"
           "    sys.modules[name] = None\n"
           "from hirelc_agent.cli import main\n"
           "main()\n")
TOKEN_VAR = "HIRELC_TEST_AGENT_TOKEN"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AgentProcess:
    """``hirelc-agent`` on 127.0.0.1: started, killed (-9) and restarted on the same port with the same token."""

    def __init__(self, workdir: Path, *args: str, port: int | None = None, token: str | None = None):
        self.workdir, self.args = Path(workdir), list(args)
        self.port = port or free_port()
        self.token = token or secrets.token_hex(16)
        self.log = self.workdir / f"agent-{self.port}.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "AgentProcess":
        env = {**os.environ, "HIRELC_AGENT_TOKEN": self.token}
        self.process = subprocess.Popen(
            [sys.executable, "-c", _LAUNCH, "--port", str(self.port), *self.args], env=env, text=True,
            stdout=subprocess.PIPE, stderr=self.log.open("a"))
        line = self.process.stdout.readline()
        if not re.search(rf"listening on http://127\.0\.0\.1:{self.port}\b", line):
            self.process.kill()
            raise RuntimeError(f"agent did not start: {line!r}; log: {self.log.read_text()}")
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash or a pulled plug would end it."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()

    def wait_for_log(self, pattern: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.log.read_text()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"agent log never matched {pattern!r}")
            time.sleep(0.05)

    def request(self, method: str, path: str, body: bytes | None = None, token: str | None = "",
                headers: dict | None = None) -> tuple[int, bytes]:
        """(status, body) of one request; ``token`` "" means the agent's own, None means no header."""
        headers = dict(headers or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token or self.token}"
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def device(self) -> dict:
        status, body = self.request("GET", "/v1/device")
        assert status == 200, body
        return json.loads(body)
