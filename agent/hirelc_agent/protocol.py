"""The agent's HTTP protocol, shared by the server and the ``hirelc`` client so neither spells it twice.

Every request carries ``Authorization: Bearer TOKEN``. Models are content-addressed: ``PUT /v1/models/SHA256``
uploads one (its body is the ONNX file), and measurement requests name models by that hash; a request naming a
model the agent does not hold (never sent, evicted, or the agent restarted) is answered 404 with ``missing``, and
the client uploads those and asks again. Measurements answer as JSON lines (``application/x-ndjson``): progress
lines while the device works, then one ``result`` or ``error`` line.
"""

from __future__ import annotations

PROTOCOL_VERSION = 1
DEFAULT_PORT = 8790
TOKEN_ENV = "HIRELC_AGENT_TOKEN"

DEVICE_PATH = "/v1/device"
MODELS_PATH = "/v1/models/"  # + sha256 hex
TIME_PATH = "/v1/time"
PROFILE_PATH = "/v1/profile"
CLIENT_HEADER = "X-Hirelc-Client"  # who asks (user@host pid), for the agent's log

# Progress and result lines of a measurement.
QUEUED = "queued"  # {"queued": measurements ahead of this one}
STARTED = "started"  # {"started": agent monotonic seconds}
BURST = "burst"  # {"burst": 1}
RESULT = "result"
ERROR = "error"


def is_sha256(text: str) -> bool:
    """Whether ``text`` is a lowercase sha256 hex digest (the only model names the agent accepts)."""
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)
