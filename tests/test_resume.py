"""Resuming a search from its run directory: recorded evaluations are reused, never recorded twice, and the
search ends where an uninterrupted one ends."""

from __future__ import annotations

import json

import pytest

from hirelc_deploy.errors import InputError
from hirelc_deploy.jobs.compress import checkpointed_search as _search
from hirelc_deploy.progress import SilentReporter
from hirelc_deploy.records import Candidate, CompressConfig, CompressRunConfig
from hirelc_deploy.resumption import read_candidates, resumed_config
from hirelc_deploy.runs import RunDirectory
from hirelc_deploy.search.evaluate import Evaluator
from hirelc_deploy.search.registry import STRATEGIES

EVALS = 6


class Killed(Exception):
    """Stands for the process dying after some evaluations were recorded."""


class KillAfter(SilentReporter):
    def __init__(self, steps: int):
        self.steps = steps

    def advance(self, steps: int = 1, detail: str | None = None) -> None:
        self.steps -= steps
        if self.steps == 0:
            raise Killed


class CountingEvaluator(Evaluator):
    """A fresh evaluator (empty cache) that counts the candidates it really builds."""

    def __init__(self, shared: Evaluator):
        super().__init__(shared.teacher, shared.blocks, shared.input_shape, shared.data, shared.sensitivity,
                         cache={})
        self.built = 0

    def build(self, widths, precisions):
        self.built += 1
        return super().build(widths, precisions)


def _config(strategy: str) -> CompressConfig:
    return CompressConfig("resnet20", "w.th", "data", "cpu-ort-1t", "0.45x", strategy=strategy, evals=EVALS, seed=3)


def _lines(run: RunDirectory) -> list[dict]:
    return [json.loads(line) for line in run.path("candidates.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_resumed_search_reuses_evaluations_and_ends_like_an_uninterrupted_one(tiny_problem, tmp_path, strategy):
    space, sensitivity, shared = tiny_problem
    budget = space.uncompressed_ms * 0.45
    whole = RunDirectory(tmp_path / "whole")
    uninterrupted = _search(_config(strategy), whole, space, sensitivity, CountingEvaluator(shared), budget,
                            SilentReporter())

    run = RunDirectory(tmp_path / "killed")
    with pytest.raises(Killed):
        _search(_config(strategy), run, space, sensitivity, CountingEvaluator(shared), budget,
                KillAfter(max(1, len(uninterrupted.history) // 2)))
    with open(run.path("candidates.jsonl"), "a") as handle:
        handle.write('{"strategy": "' + strategy + '", "index": 3, "wid')  # a line cut by the kill
    before = _lines_without_cut(run)
    evaluator = CountingEvaluator(shared)
    resumed = _search(_config(strategy), run, space, sensitivity, evaluator, budget, SilentReporter())

    assert [(e.options, e.result.top1, e.result.kl) for e in resumed.history] == \
           [(e.options, e.result.top1, e.result.kl) for e in uninterrupted.history]
    assert resumed.best.options == uninterrupted.best.options
    assert evaluator.built == len(uninterrupted.history) - len(before)
    records = _lines(run)
    assert records[:len(before)] == before
    strip = [{k: v for k, v in r.items() if k not in ("seconds", "cached")} for r in records]
    assert strip == [{k: v for k, v in r.items() if k not in ("seconds", "cached")} for r in _lines(whole)]


def _lines_without_cut(run: RunDirectory) -> list[dict]:
    return [json.loads(line) for line in run.path("candidates.jsonl").read_text().splitlines()[:-1]]


def test_damaged_candidates_file_is_an_error_naming_it(tmp_path):
    line = json.dumps(Candidate("hirelc", 0, [8], ["fp32"], 1.0, 0.5, 0.5, 0.1, 1.0, False).to_dict())
    (tmp_path / "candidates.jsonl").write_text(f"{line}\nnot json\n{line}\n")
    with pytest.raises(InputError, match=r"candidates.jsonl: line 2"):
        read_candidates(tmp_path)


def test_resume_with_a_different_configuration_names_the_flag(tmp_path):
    CompressRunConfig(_config("hirelc"), "w.th", "0" * 64, str(tmp_path), "0", "now", {}, {}).save(
        tmp_path / "config.json")
    assert resumed_config(tmp_path, {"evals": EVALS}) == _config("hirelc")
    with pytest.raises(InputError, match=r"--resume .*--evals 50 \(the run used 6\)"):
        resumed_config(tmp_path, {"evals": 50})
    with pytest.raises(InputError, match=r"--resume .*no such run directory"):
        resumed_config(tmp_path / "nope", {})
