"""The models an agent holds: uploaded ONNX files in its own temporary directory, capped in size and number.

Each model lives alone in its own directory (named by its sha256), so external-data references can only point at
files beside it, of which there are none; ONNX Runtime 1.24+ refuses absolute or escaping external-data paths.
An upload is accepted only if ONNX Runtime can load it on the CPU with no custom-op library registered: anything
else (not ONNX, a pickle, a custom op, data outside its directory) is refused and deleted. Nothing received is
ever executed other than as an ONNX graph in ONNX Runtime.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

import onnxruntime as ort

MODEL_FILE = "model.onnx"


class RefusedModel(ValueError):
    """An upload that is not a loadable ONNX model, or whose content does not match its name."""


class ModelStore:
    """Models by sha256, least recently used evicted beyond ``max_models``."""

    def __init__(self, root: Path | None = None, max_models: int = 128):
        self.root = Path(root or tempfile.mkdtemp(prefix="hirelc-agent-"))
        self.max_models = max_models
        self._models: OrderedDict[str, Path] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, sha: str, data: bytes) -> Path:
        """Keep ``data`` as model ``sha`` once it is checked; the path it is kept at."""
        if hashlib.sha256(data).hexdigest() != sha:
            raise RefusedModel(f"the body's sha256 is not {sha}")
        folder = Path(tempfile.mkdtemp(prefix="upload-", dir=self.root))
        path = folder / MODEL_FILE
        path.write_bytes(data)
        try:
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            options.log_severity_level = 4
            ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises several types; every one means refused
            shutil.rmtree(folder, ignore_errors=True)
            # ONNX Runtime names the file it loaded: the agent's own paths are none of the client's business.
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(" failed:")[-1]
            raise RefusedModel(f"not an ONNX model ONNX Runtime can load ({first[:200]})") from None
        with self._lock:
            final = self.root / sha
            if final.exists():
                shutil.rmtree(folder, ignore_errors=True)
            else:
                folder.rename(final)
            self._models[sha] = final / MODEL_FILE
            self._models.move_to_end(sha)
            while len(self._models) > self.max_models:
                _, old = self._models.popitem(last=False)
                shutil.rmtree(old.parent, ignore_errors=True)
            return self._models[sha]

    def missing(self, shas) -> list[str]:
        """Which of ``shas`` this store does not hold."""
        with self._lock:
            return [s for s in shas if s not in self._models]

    def path(self, sha: str) -> Path:
        """Where model ``sha`` is (marking it recently used)."""
        with self._lock:
            self._models.move_to_end(sha)
            return self._models[sha]

    def __len__(self) -> int:
        return len(self._models)

    def close(self) -> None:
        """Delete every model held."""
        shutil.rmtree(self.root, ignore_errors=True)
