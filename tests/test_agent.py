"""hirelc-agent on its own: the token, what it accepts, and one measurement at a time (real agent processes)."""

from __future__ import annotations

import hashlib
import http.client
import json
import pickle
import threading

import numpy as np
import pytest
from hirelc_agent.protocol import DEVICE_PATH, MODELS_PATH, TIME_PATH
from onnx import TensorProto, helper

from hirelc_deploy.targets.backends.common import overhead_model

from .agent_process import AgentProcess

SESSION = {"execution_provider": "CPUExecutionProvider", "threads": 1}
QUICK = {"warmup_runs": 2, "bursts": 3, "max_bursts": 3, "runs_per_burst": 5, "max_retries": 0, "max_wait_s": 0.0,
         "max_busy_cores": 64.0}


@pytest.fixture
def agent(tmp_path):
    process = AgentProcess(tmp_path, "--max-upload-mb", "1").start()
    yield process
    process.stop()


def _model(tmp_path, classes: int = 10) -> tuple[bytes, str]:
    data = overhead_model((1, 3, 16, 16), classes, tmp_path / f"m{classes}.onnx").read_bytes()
    return data, hashlib.sha256(data).hexdigest()


def _lines(body: bytes) -> list[dict]:
    return [json.loads(line) for line in body.splitlines()]


def test_requests_without_the_token_are_refused_and_nothing_is_measured(agent, tmp_path):
    data, sha = _model(tmp_path)
    measure = json.dumps({"models": {"m": sha}, "session": SESSION, "measure": QUICK}).encode()
    for token in (None, "not-the-token", agent.token[:-1]):
        assert agent.request("GET", DEVICE_PATH, token=token)[0] == 401
        assert agent.request("PUT", MODELS_PATH + sha, data, token=token)[0] == 401
        assert agent.request("POST", TIME_PATH, measure, token=token)[0] == 401
    device = agent.device()
    assert device["models_held"] == 0 and device["measurements"] == 0
    assert agent.log.read_text().count("refused: missing or wrong token") == 9


def _external_data_model(location: str) -> bytes:
    """x + W where W's bytes are 'stored' in a file named ``location`` (an attempt to read files off the agent)."""
    weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4])
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        weight.external_data.add(key=key, value=value)
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], [weight])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_oversized_foreign_and_escaping_uploads_are_refused_and_the_agent_keeps_serving(agent, tmp_path):
    # Too large: refused from the headers, before any of the body is sent.
    connection = http.client.HTTPConnection("127.0.0.1", agent.port, timeout=30)
    connection.putrequest("PUT", MODELS_PATH + "0" * 64)
    connection.putheader("Authorization", f"Bearer {agent.token}")
    connection.putheader("Content-Length", str(50 * 2**20))
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413 and "exceeds the agent's limit" in json.loads(response.read())["error"]
    connection.close()

    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(4, dtype=np.float32).tobytes())
    for body in (pickle.dumps({"weights": [1, 2, 3]}), b"not a model at all",
                 _external_data_model(str(secret)), _external_data_model("../../" + secret.name)):
        status, answer = agent.request("PUT", MODELS_PATH + hashlib.sha256(body).hexdigest(), body)
        assert status == 400 and "not an ONNX model ONNX Runtime can load" in json.loads(answer)["error"]
    data, sha = _model(tmp_path)
    status, answer = agent.request("PUT", MODELS_PATH + "f" * 64, data)
    assert status == 400 and "sha256" in json.loads(answer)["error"]
    assert agent.device()["models_held"] == 0

    assert agent.request("PUT", MODELS_PATH + sha, data)[0] == 201
    status, answer = agent.request("POST", TIME_PATH, json.dumps(
        {"models": {"m": sha}, "session": SESSION, "measure": QUICK}).encode())
    lines = _lines(answer)
    assert status == 200 and sum("burst" in line for line in lines) == 3
    assert lines[-1]["result"]["timings"]["m"]["median_ms"] > 0


def test_a_measurement_of_models_the_agent_lacks_names_them(agent, tmp_path):
    _, sha = _model(tmp_path)
    status, answer = agent.request("POST", TIME_PATH, json.dumps(
        {"models": {"m": sha}, "session": SESSION, "measure": QUICK}).encode())
    assert status == 404 and json.loads(answer)["missing"] == [sha]
    bad = {"models": {"m": sha}, "session": {**SESSION, "execution_provider": "NoSuchExecutionProvider"}}
    status, answer = agent.request("POST", TIME_PATH, json.dumps(bad).encode())
    assert status == 400 and "NoSuchExecutionProvider" in json.loads(answer)["error"]


def test_two_clients_at_once_are_timed_one_after_the_other(agent, tmp_path):
    shas = []
    for classes in (10, 20):
        data, sha = _model(tmp_path, classes)
        assert agent.request("PUT", MODELS_PATH + sha, data)[0] == 201
        shas.append(sha)
    # Long enough (about a second each) that two unserialised measurements would overlap.
    slow = {**QUICK, "runs_per_burst": 3000}
    answers: list[list[dict]] = []

    def measure(sha):
        status, body = agent.request("POST", TIME_PATH, json.dumps(
            {"models": {"m": sha}, "session": SESSION, "measure": slow}).encode())
        assert status == 200
        answers.append(_lines(body))

    threads = [threading.Thread(target=measure, args=(sha,)) for sha in shas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(answers) == 2
    assert sorted(a[0]["queued"] for a in answers) == [0, 1]
    first, second = sorted((a[-1]["result"]["started"], a[-1]["result"]["finished"]) for a in answers)
    assert first[1] - first[0] > 0.2 and second[0] >= first[1]


def test_the_agent_package_imports_neither_torch_nor_onnx_nor_hirelc():
    import ast
    from pathlib import Path

    import hirelc_agent

    imported = set()
    for path in Path(hirelc_agent.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    assert "onnxruntime" in imported and "tornado" in imported
    assert not imported & {"torch", "onnx", "hirelc_deploy", "google"}, imported
