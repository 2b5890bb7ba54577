"""Remote targets: profile, bench and target files through a real hirelc-agent, and what happens when it dies."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
import time

import pytest

from hirelc_deploy import profile
from hirelc_deploy.data import Normalize
from hirelc_deploy.errors import TableError, TargetError
from hirelc_deploy.latency.table import load_table
from hirelc_deploy.targets import backend_of, current_fingerprint, parse_target
from hirelc_deploy.targets.backends.common import overhead_model

from .agent_process import TOKEN_VAR, AgentProcess
from .conftest import QUICK_TARGET, TINY_TARGET, hirelc


def remote_target(tmp_path, agent: AgentProcess, retry_s: float = 60.0, name: str = "remote-tiny",
                  base: str = TINY_TARGET):
    """``base`` (a test target's TOML) renamed ``name``, measured on ``agent``."""
    text = re.sub(r'(?m)^name = ".*"$', f'name = "{name}"', base)
    text += f'\n[device]\nurl = "{agent.url}"\ntoken_env = "{TOKEN_VAR}"\nretry_s = {retry_s}\n'
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return parse_target(path)


@pytest.fixture
def agent(tmp_path, monkeypatch):
    process = AgentProcess(tmp_path).start()
    monkeypatch.setenv(TOKEN_VAR, process.token)
    yield process
    process.stop()


@pytest.mark.slow
def test_profile_resnet20_on_an_agent_that_is_killed_and_restarted(agent, tmp_path, caplog):
    target = remote_target(tmp_path, agent)
    result: dict = {}

    def run():
        try:
            result["profile"] = profile("resnet20", target, out=tmp_path / "table.json", run_dir=tmp_path / "run")
        except Exception as exc:  # noqa: BLE001 - handed to the test thread
            result["error"] = exc

    caplog.set_level(logging.WARNING, logger="hirelc_deploy.targets.agent_client")
    thread = threading.Thread(target=run)
    thread.start()
    agent.wait_for_log(r"profile \w+: done")
    agent.kill()
    time.sleep(1.5)
    agent.start()
    thread.join(timeout=600)
    assert "error" not in result, result.get("error")
    assert any("unreachable" in r.message for r in caplog.records)

    table = load_table(tmp_path / "table.json")
    device = agent.device()
    assert table.kind == "measured" and len(table.blocks) == 9
    assert table.fingerprint["cpu_model"] == device["cpu_model"]
    assert table.fingerprint["runtime_version"] == device["onnxruntime_version"]
    assert table.method["device"]["url"] == agent.url and agent.url in table.method["measured_on"]
    # The restarted agent lost every model, was sent them again, and measured the rest of the profile.
    assert device["models_held"] > 0 and device["measurements"] > 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert agent.url in config["measured_on"]

    # The device changed its runtime (as an upgrade would): the table is refused unless forced, naming it.
    changed = {**table.to_dict(), "fingerprint": {**table.fingerprint, "runtime_version": "0.9.0"}}
    (tmp_path / "old.json").write_text(json.dumps(changed))
    with pytest.raises(TableError, match=r"runtime_version: '0\.9\.0' != '"):
        load_table(tmp_path / "old.json").check_device(current_fingerprint(target), source="old.json")
    load_table(tmp_path / "old.json").check_device(current_fingerprint(target), force=True)


@pytest.mark.slow
def test_an_agent_killed_mid_profile_is_retried_then_named_in_one_line(agent, tmp_path):
    target = remote_target(tmp_path, agent, retry_s=3.0)
    env = {**os.environ, TOKEN_VAR: agent.token}
    command = [sys.executable, "-m", "hirelc_deploy.cli", "-q", "profile", "--model", "resnet20", "--target",
               target.path, "--out", str(tmp_path / "t.json"), "--run-dir", str(tmp_path / "run")]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    agent.wait_for_log("stored model")
    agent.kill()
    killed = time.monotonic()
    _, err = process.communicate(timeout=300)
    waited = time.monotonic() - killed
    lines = [line for line in err.splitlines() if line.strip()]
    # Warnings while it retries, then the one error line.
    assert process.returncode != 0 and [line.startswith("error:") for line in lines][-2:] == [False, True], err
    assert all("retrying in" in line for line in lines[:-1])
    assert lines[-1].startswith(f"error: device {agent.url} (target remote-tiny): unreachable for 3 s (")
    assert 3.0 <= waited < 60, waited
    assert not (tmp_path / "t.json").exists()


def test_bench_on_a_remote_target_times_on_the_agent(agent, tmp_path):
    target = remote_target(tmp_path, agent)
    model = overhead_model((1, 3, 32, 32), 10, tmp_path / "m.onnx")
    baseline = overhead_model((1, 3, 32, 32), 20, tmp_path / "b.onnx")
    result = backend_of(target).bench_files(model, target, baseline, None, Normalize((0, 0, 0), (1, 1, 1)))
    assert result.latency_ms["median_ms"] > 0 and result.speedup is not None
    assert f"the hirelc-agent at {agent.url}" in result.measured_with
    assert result.fingerprint == current_fingerprint(target).to_dict()
    assert agent.device()["measurements"] == 1


def test_targets_new_writes_a_target_from_what_the_agent_reports(agent, tmp_path, monkeypatch, capsys):
    code, out, err = hirelc(monkeypatch, capsys, "targets", "new", "board", "--agent", agent.url, "--token-env",
                            TOKEN_VAR, "--threads", "2", "--batch", "1", "--json")
    assert code == 0, err
    target = parse_target(json.loads(out)["path"])
    device = agent.device()
    assert target.device.url == agent.url and target.device.token_env == TOKEN_VAR
    assert device["cpu_model"] in target.description and target.threads == 2
    assert backend_of(target).fingerprint(target).cpu_model == device["cpu_model"]

    monkeypatch.setenv(TOKEN_VAR, "wrong")
    code, _, err = hirelc(monkeypatch, capsys, "targets", "new", "board2", "--agent", agent.url, "--token-env",
                          TOKEN_VAR, "--threads", "1", "--batch", "1")
    assert code != 0 and f"error: device {agent.url} (target board2): the agent refused our token (401)" in err


def test_a_remote_target_file_is_checked(tmp_path, monkeypatch):
    def parse(device: str, backend: str = "onnxruntime"):
        path = tmp_path / "t.toml"
        path.write_text(TINY_TARGET.replace('backend = "onnxruntime"', f'backend = "{backend}"') + device)
        return parse_target(path)

    assert parse('\n[device]\nurl = "http://board:8790/"\n').device.url == "http://board:8790"
    for device, message in (('\n[device]\nurl = "board:8790"\n', "url must be http"),
                            ('\n[device]\nhost = "board"\n', "unknown key"),
                            ('\n[device]\nurl = "http://b:1"\nretry_s = -1\n', "retry_s must be"),
                            ('\n[device]\nurl = "http://b:1"\ntoken_env = "A B"\n', "token_env must name")):
        with pytest.raises(TargetError, match=message):
            parse(device)
    monkeypatch.delenv(TOKEN_VAR, raising=False)
    target = parse(f'\n[device]\nurl = "http://127.0.0.1:9"\ntoken_env = "{TOKEN_VAR}"\n')
    with pytest.raises(Exception, match=rf"\${TOKEN_VAR} is not set"):
        current_fingerprint(target)
    with pytest.raises(TargetError, match="remote tensorrt targets are not supported"):
        parse('\n[device]\nurl = "http://b:1"\n', backend="tensorrt")


# Shorter than QUICK_RUN: this test is about where the timings come from, not about what the search finds.
BRIEF_RUN = ["--latency-budget", "0.6x", "--evals", "3", "--finetune-images", "64", "--finetune-epochs", "0",
             "--heldout-images", "50", "--test-per-class", "2", "--finalists", "1"]


@pytest.mark.slow
@pytest.mark.shared
def test_compress_through_an_agent_that_dies_resumes_with_every_timing_recorded(agent, tmp_path, shared):
    target = remote_target(tmp_path, agent, retry_s=2, name="remote-quick", base=QUICK_TARGET).path
    run = tmp_path / "run"
    command = [sys.executable, "-m", "hirelc_deploy.cli", "-q", "compress", "--model", "resnet20",
               "--weights", str(shared / "models" / "cifar10-resnet" / "resnet20-12fca82f.th"),
               "--data", str(shared / "datasets" / "cifar10"), "--target", str(target), "--run-dir", str(run),
               *BRIEF_RUN]
    env = {**os.environ, TOKEN_VAR: agent.token, "HIRELC_TABLES": str(tmp_path / "tables")}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The table's timing, then the calibration's: the agent dies before the finalists are timed.
    agent.wait_for_log(r"(time \d+ model.*done in[\s\S]*){2}", timeout=300)
    agent.kill()
    _, err = process.communicate(timeout=300)
    assert process.returncode == 2 and err.strip().splitlines()[-1].startswith(f"error: device {agent.url}"), err
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "failed" and "unreachable" in status["error"]
    assert (run / "calibration.json").is_file() and not (run / "finalists.json").exists()

    before = agent.log.read_text()
    agent.start()
    resumed = subprocess.run([*command[:4], "compress", "--resume", str(run), "--json"], env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["latency_kind"] == "measured" and agent.url in json.loads(
        (run / "config.json").read_text())["measured_on"]
    # After the restart the agent timed only what had not been recorded: each round of finalists, the benchmark
    # (the verdict's first process) and the verdict's further processes; the table and the calibration came from
    # the run directory.
    after = agent.log.read_text()[len(before):]
    rounds = len(json.loads((run / "finalists.json").read_text())["rounds"])
    processes = len(json.loads((run / "final_latency.json").read_text())["engine_rounds_ms"])
    assert "profile" not in after and len(re.findall(r"time \d+ model\(s\).*: done in", after)) == rounds + processes
    assert f"the hirelc-agent at {agent.url}" in json.loads((run / "bench.json").read_text())["measured_with"]
