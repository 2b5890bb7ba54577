"""Benchmark: a table profiled through a hirelc-agent against the same table profiled in-process.

Starts a real ``hirelc-agent`` on this machine (localhost, a random token), then, for ``--rounds`` rounds in
alternating order (local remote, remote local, ...): profiles MODEL on TARGET in-process and through the agent
(a fresh agent each round, so every model is uploaded again), and validates each table against ``--validate``
random configurations (plus the two fixed ones) exported and timed where its table was. Reports the validation
errors side by side and the profiling wall time of each (the transport's overhead), medians with their spread.
Because a table and its validation are minutes apart, a shared machine's drift can dominate both errors, so the
validation networks of the first round are also timed in-process (a fresh process, as compress times) and
through the agent, alternating ``--paired`` times: the remote/local ratio per network says what the transport
itself changes. Then runs one ``hirelc compress --target <remote target>`` (a fresh tables directory: the table
too is measured through the agent) and shows where each of its latencies came from.

    python tools/bench_remote.py                          # resnet56 on cpu-ort-1t, 2 rounds, 12 validations
    python tools/bench_remote.py --rounds 3 --no-compress --out tools/results/bench_remote_tables
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from hirelc_deploy.jobs.profile import measure_table
from hirelc_deploy.latency import validate
from hirelc_deploy.latency.profile import model_input_shape
from hirelc_deploy.latency.validate import validation_configs
from hirelc_deploy.models import get_model_spec
from hirelc_deploy.runs import atomic_write_json, atomic_write_text
from hirelc_deploy.settings import REPO_ROOT, shared_dir
from hirelc_deploy.targets import backend_of, load_target, parse_target
from hirelc_deploy.targets.catalog import SHIPPED_DIR

TOKEN_VAR = "HIRELC_BENCH_AGENT_TOKEN"
CHECKPOINTS = {"resnet20": "resnet20-12fca82f.th", "resnet56": "resnet56-4bfd9763.th"}


def start_agent(log: Path) -> tuple[subprocess.Popen, str]:
    """``hirelc-agent`` on a free localhost port; (process, url)."""
    process = subprocess.Popen([shutil.which("hirelc-agent") or "hirelc-agent", "--port", "0"], text=True,
                               env={**os.environ, "HIRELC_AGENT_TOKEN": os.environ[TOKEN_VAR]},
                               stdout=subprocess.PIPE, stderr=log.open("a"))
    match = re.search(r"listening on (http://\S+)", process.stdout.readline())
    if not match:
        process.kill()
        raise SystemExit(f"hirelc-agent did not start; see {log}")
    return process, match.group(1)


def remote_target_file(target_name: str, url: str, directory: Path) -> Path:
    """The shipped target with a [device] naming the agent (same name + "-agent", same grid and settings)."""
    text = (SHIPPED_DIR / f"{target_name}.toml").read_text(encoding="utf-8")
    text = text.replace(f'name = "{target_name}"', f'name = "{target_name}-agent"')
    path = directory / f"{target_name}-agent.toml"
    path.write_text(text + f'\n[device]\nurl = "{url}"\ntoken_env = "{TOKEN_VAR}"\n', encoding="utf-8")
    return path


def profile_and_validate(spec, target, count: int, seed: int) -> tuple[dict, object]:
    start = time.perf_counter()
    table = measure_table(spec, target)
    profile_s = time.perf_counter() - start
    report = validate(table, spec, target, count, seed=seed)
    return {"profile_s": profile_s, "validate_s": time.perf_counter() - start - profile_s,
            "fingerprint": table.fingerprint, "measured_on": table.method["measured_on"],
            "summary": report.summary(), "rows": report.to_dict()["rows"]}, table


def paired_timing(spec, local, remote, table, count: int, seed: int, rounds: int) -> dict:
    """The validation networks timed in a fresh local process and through the agent, alternating; per network,
    the remote/local ratio of each round."""
    configs = validation_configs(table, count, seed)
    builder = backend_of(local)
    medians: dict[str, dict[str, list[float]]] = {"local": {}, "remote": {}}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {label: builder.build_variant(spec, c.widths, c.precisions, model_input_shape(spec, local),
                                              Path(tmp) / f"{label}.onnx") for label, c in configs}
        for r in range(rounds):
            for where in (["local", "remote"] if r % 2 == 0 else ["remote", "local"]):
                target = local if where == "local" else remote
                for label, timing in backend_of(target).time_graphs_fresh(paths, target).items():
                    medians[where].setdefault(label, []).append(timing.median_ms)
    ratios = {label: [b / a for a, b in zip(medians["local"][label], medians["remote"][label])] for label in paths}
    return {"rounds": rounds, "local_ms": medians["local"], "remote_ms": medians["remote"], "ratios": ratios}


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} [{min(values):.2f}, {max(values):.2f}]"


def markdown(rounds: list[dict], paired: dict | None, compress: dict | None) -> str:
    lines = ["| round | where | profile s | validate s | fp32 median/max abs err % | int8/mixed median/max % |",
             "|---|---|---|---|---|---|"]
    for i, r in enumerate(rounds):
        for where in r["order"]:
            m = r[where]
            s = m["summary"]
            lines.append(f"| {i} | {where} | {m['profile_s']:.1f} | {m['validate_s']:.1f} | "
                         f"{s['fp32']['median_ape']:.2f} / {s['fp32']['max_ape']:.2f} | "
                         f"{s['int8_or_mixed']['median_ape']:.2f} / {s['int8_or_mixed']['max_ape']:.2f} |")
    lines.append("")
    for what in ("profile_s", "validate_s"):
        local = [r["local"][what] for r in rounds]
        remote = [r["remote"][what] for r in rounds]
        ratio = [b / a for a, b in zip(local, remote)]
        lines.append(f"- {what}: local {_spread(local)}, remote {_spread(remote)}; remote/local "
                     f"{_spread(ratio)} (median [min, max] over rounds)")
    if paired:
        every = [x for values in paired["ratios"].values() for x in values]
        per_network = [statistics.median(v) for v in paired["ratios"].values()]
        lines += ["", f"- the same {len(per_network)} networks timed in a fresh local process and through the agent, "
                  f"alternating {paired['rounds']} times: remote/local {_spread(every)} over every (network, round); "
                  f"per-network medians {_spread(per_network)}"]
    if compress:
        lines += ["", f"compress through the agent: {compress['verdict']}; {compress['measured_ms']:.4f} ms vs "
                  f"budget {compress['budget_ms']:.4f} ms, speedup {compress['speedup']:.2f}x, top-1 "
                  f"{100 * compress['top1_before']:.2f}% -> {100 * compress['top1_after']:.2f}%, "
                  f"{compress['wall_s'] / 60:.1f} min",
                  f"- config.json measured_on: {compress['measured_on']}",
                  f"- bench.json measured_with: {compress['measured_with']}",
                  f"- agent measurements during the run: {compress['agent_requests']}"]
    return "\n".join(lines)


def run_compress(args, url: str, workdir: Path, agent_log: Path) -> dict:
    target = remote_target_file(args.target, url, workdir)
    run_dir = REPO_ROOT / "runs" / f"bench-remote-{time.strftime('%Y%m%d-%H%M%S')}"
    env = {**os.environ, "HIRELC_TABLES": str(workdir / "tables")}
    weights = shared_dir() / "models" / "cifar10-resnet" / CHECKPOINTS[args.model]
    before = agent_log.read_text().count(": done in")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hirelc_deploy.cli", "compress", "--model", args.model, "--weights",
                    str(weights), "--data", str(shared_dir() / "datasets" / "cifar10"), "--target", str(target),
                    "--latency-budget", args.budget, "--evals", str(args.evals), "--run-dir", str(run_dir)],
                   env=env, check=True)
    wall = time.perf_counter() - start
    summary = json.loads((run_dir / "summary.json").read_text())
    log = agent_log.read_text()
    done = [line.split(": ", 1)[-1] for line in log.splitlines() if ": done in" in line][before:]
    return {**{k: summary[k] for k in ("verdict", "measured_ms", "budget_ms", "speedup", "top1_before",
                                       "top1_after", "measured_rounds_ms", "uncompressed_rounds_ms")},
            "wall_s": wall, "run_dir": str(run_dir),
            "measured_on": json.loads((run_dir / "config.json").read_text())["measured_on"],
            "measured_with": json.loads((run_dir / "bench.json").read_text())["measured_with"],
            "agent_requests": done}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet56", choices=sorted(CHECKPOINTS))
    parser.add_argument("--target", default="cpu-ort-1t", help="a shipped ONNX Runtime target")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--validate", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", default="0.5x")
    parser.add_argument("--evals", type=int, default=100)
    parser.add_argument("--paired", type=int, default=4, help="alternating rounds of the paired timing (0: none)")
    parser.add_argument("--no-compress", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "tools" / "results" / "bench_remote")
    args = parser.parse_args()
    os.environ.setdefault(TOKEN_VAR, secrets.token_hex(16))
    console = Console()
    spec = get_model_spec(args.model)
    local = load_target(args.target)
    workdir = Path(tempfile.mkdtemp(prefix="bench-remote-"))
    agent_log = workdir / "agent.log"
    rounds, paired, first_table = [], None, None
    for i in range(args.rounds):
        order = ["local", "remote"] if i % 2 == 0 else ["remote", "local"]
        agent, url = start_agent(agent_log)
        try:
            remote = parse_target(remote_target_file(args.target, url, workdir))
            result = {"order": order}
            for where in order:
                console.print(f"round {i}: {where} profile + validation of {args.model}")
                result[where], table = profile_and_validate(spec, local if where == "local" else remote,
                                                            args.validate, args.seed)
                first_table = first_table or table
            if args.paired and i == args.rounds - 1:
                console.print(f"paired timing of the validation networks, {args.paired} alternating rounds")
                paired = paired_timing(spec, local, remote, first_table, args.validate, args.seed, args.paired)
        finally:
            agent.kill()
        rounds.append(result)
    compress = None
    if not args.no_compress:
        agent, url = start_agent(agent_log)
        try:
            compress = run_compress(args, url, workdir, agent_log)
        finally:
            agent.kill()
    record = {"model": args.model, "target": args.target, "validate": args.validate, "rounds": rounds,
              "paired": paired, "compress": compress, "agent_log": str(agent_log)}
    atomic_write_json(args.out.with_suffix(".json"), record)
    atomic_write_text(args.out.with_suffix(".md"), markdown(rounds, paired, compress))
    console.print(markdown(rounds, paired, compress))
    console.print(f"written {args.out.with_suffix('.md')} and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
