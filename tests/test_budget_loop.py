"""The closed loop on the budget (``jobs/finalists.py``) against a device whose latencies a table under-predicts,
and the final-timing rule (``verdict.py``) on synthetic timings with a slow state in some processes."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest

from hirelc_agent.timing import Timing
from hirelc_deploy.budget import parse_budget
from hirelc_deploy.jobs.finalists import MAX_ROUNDS, BudgetNotMet, close_the_loop
from hirelc_deploy.jobs.rerank import spearman
from hirelc_deploy.precision import Precision
from hirelc_deploy.search import SearchSpace
from hirelc_deploy.search.context import Evaluation
from hirelc_deploy.search.evaluate import EvalResult
from hirelc_deploy.verdict import MAX_PROCESSES, final_latency, judge, measure_final

from .conftest import random_table


def _scaled(table, int8: float = 1.0, fp32: float = 1.0):
    out = copy.deepcopy(table)
    for block in out.blocks:
        for precision, values in block.latency_ms.items():
            block.latency_ms[precision] = [v * (int8 if precision == Precision.INT8 else fp32) for v in values]
    return out


class Device:
    """A backend whose engines take what ``truth`` (a search space over the true table) says, exactly."""

    calibrates = True

    def __init__(self, truth: SearchSpace):
        self.truth, self.timed = truth, []

    def time_configs(self, spec, target, configs):
        self.timed.append(len(configs) - 1)
        return [Timing(float(ms), float(ms), float(ms), 3)
                for ms in self.truth.latency(np.array([self.truth.encode(w, p) for w, p in configs]))]


def _evaluations(space: SearchSpace, truth: SearchSpace, rows: np.ndarray, start: int = 0) -> list[Evaluation]:
    """Evaluations of ``rows`` whose proxy accuracy grows with their true latency (capacity kept)."""
    true_ms = truth.latency(rows)
    predicted = space.latency(rows)
    out = []
    for k, (x, ms, pred) in enumerate(zip(rows, true_ms, predicted)):
        widths, precisions = space.decode(x)
        top1 = float(ms / truth.uncompressed_ms)
        out.append(Evaluation(start + k, tuple(int(v) for v in x), tuple(widths), tuple(precisions), float(pred),
                              EvalResult(top1, top1, 1 - top1, 0.0), False))
    return out


@pytest.fixture
def optimistic():
    """A table whose INT8 blocks the device runs 2.5x slower than it says, the device, and a search's
    evaluations: everything the table predicts within 0.7x of the uncompressed model."""
    table = random_table(3, 8)
    space = SearchSpace(_scaled(table, int8=0.4), ["fp32", "int8"])
    truth = SearchSpace(table, ["fp32", "int8"])
    rows = space.random(np.random.default_rng(0), 400)
    spec = SimpleNamespace(blocks=lambda: [SimpleNamespace(full_width=int(w)) for w in space.full_width])
    return space, truth, rows, spec


def test_the_loop_corrects_an_optimistic_table_until_a_finalist_meets_the_budget(optimistic):
    space, truth, rows, spec = optimistic
    budget = parse_budget("0.7x")
    table_budget = 0.7 * space.uncompressed_ms  # the device runs the uncompressed model as the table says
    history = [e for e in _evaluations(space, truth, rows) if e.predicted_ms <= table_budget]
    device = Device(truth)
    chosen, finalists = close_the_loop(history, space, spec, None, budget, table_budget, 3, device,
                                       lambda *_: pytest.fail("recorded candidates fit: no search needed"))
    assert not finalists.rounds[0].met and finalists.rounds[-1].met and len(finalists.rounds) >= 2
    # Later rounds read a table corrected towards the device: INT8 dearer than the calibrated table said.
    assert finalists.rounds[1].factors["int8"] > 1.2
    true_ms = float(truth.latency(np.array(chosen.options)[None])[0])
    assert true_ms <= 0.7 * truth.uncompressed_ms
    assert finalists.chosen.index == chosen.index and finalists.chosen.meets_budget
    # No configuration is timed twice; the chosen one scores best among the finalists that met the budget.
    timed = [(tuple(r.widths), tuple(r.precisions)) for r in finalists.rows]
    assert len(timed) == len(set(timed)) == sum(device.timed)
    assert finalists.chosen.top1 == max(r.top1 for r in finalists.rows if r.meets_budget)


def test_finalists_that_meet_the_budget_are_chosen_by_their_distilled_score(optimistic):
    """Every finalist fits a generous budget; distillation reverses their proxy order, so the proxy's last is
    exported and the rank correlation is -1."""
    space, truth, rows, spec = optimistic
    table_budget = 0.99 * space.uncompressed_ms
    history = [e for e in _evaluations(space, truth, rows) if truth.latency(np.array(e.options)[None])[0]
               <= 0.99 * truth.uncompressed_ms]
    asked = []

    def rank(met):
        asked.append([e.index for e in met])
        return [EvalResult(0.5 + 0.1 * k, 0.5, 0.1, 1.0) for k in range(len(met))]

    chosen, finalists = close_the_loop(history, space, spec, None, parse_budget("0.99x"), table_budget, 3,
                                       Device(truth), lambda *_: pytest.fail("no search needed"), rank)
    proxy_order = [r.index for r in finalists.rows]
    assert asked == [proxy_order] and len(proxy_order) == 3
    assert chosen.index == proxy_order[-1] == finalists.chosen.index
    assert [r.distilled_top1 for r in finalists.rows] == pytest.approx([0.5, 0.6, 0.7])
    assert finalists.spearman == pytest.approx(-1.0)


def test_a_single_finalist_that_meets_the_budget_is_not_distilled(optimistic):
    space, truth, rows, spec = optimistic
    history = [e for e in _evaluations(space, truth, rows) if truth.latency(np.array(e.options)[None])[0]
               <= 0.99 * truth.uncompressed_ms]
    chosen, finalists = close_the_loop(history, space, spec, None, parse_budget("0.99x"),
                                       0.99 * space.uncompressed_ms, 1,
                                       Device(truth), lambda *_: pytest.fail("no search needed"),
                                       lambda met: pytest.fail("one finalist: nothing to rank"))
    assert finalists.spearman is None and finalists.rows[0].distilled_top1 is None and finalists.chosen.chosen


@pytest.mark.parametrize("first, second, expected", [
    ([1, 2, 3, 4], [10, 20, 30, 40], 1.0),
    ([1, 2, 3, 4], [4, 3, 2, 1], -1.0),
    ([1, 2, 3, 4], [1, 3, 2, 4], 0.8),  # 1 - 6 * (0 + 1 + 1 + 0) / (4 * 15)
    ([1, 1, 2], [1, 2, 3], 0.8660254),  # ranks (0.5, 0.5, 2) against (0, 1, 2)
    ([1], [2], None),
    ([1, 1], [1, 2], None),
])
def test_spearman_rank_correlation(first, second, expected):
    value = spearman(first, second)
    assert value == (None if expected is None else pytest.approx(expected, abs=1e-6))


def test_the_loop_searches_again_when_no_recorded_candidate_fits_the_corrected_table(optimistic):
    space, truth, rows, spec = optimistic
    table_budget = 0.7 * space.uncompressed_ms
    evaluations = _evaluations(space, truth, rows)
    # Recorded: only INT8-heavy candidates, all of which the device runs over the budget.
    history = [e for e in evaluations if e.predicted_ms <= table_budget and
               truth.latency(np.array(e.options)[None])[0] > 0.7 * truth.uncompressed_ms][:6]
    asked = []

    def search_again(corrected, budget_table_ms, round_index):
        asked.append((round_index, budget_table_ms))
        fits = corrected.latency(rows) <= budget_table_ms
        return _evaluations(space, truth, rows[fits][:20])

    chosen, finalists = close_the_loop(history, space, spec, None, parse_budget("0.7x"), table_budget, 3,
                                       Device(truth), search_again)
    assert asked and asked[0][0] >= 1 and finalists.rounds[-1].new_evaluations > 0
    assert chosen.index > max(e.index for e in history)  # from the new search, numbered after the recorded ones
    assert truth.latency(np.array(chosen.options)[None])[0] <= 0.7 * truth.uncompressed_ms


def test_a_budget_no_configuration_meets_on_the_device_is_one_line_naming_the_fastest_measured(optimistic):
    space, truth, rows, spec = optimistic
    slow = SearchSpace(_scaled(truth.table, int8=3.0, fp32=3.0), ["fp32", "int8"])
    slow.uncompressed_ms = truth.uncompressed_ms  # only the compressed configurations run slower
    table_budget = 0.4 * space.uncompressed_ms
    history = [e for e in _evaluations(space, truth, rows) if e.predicted_ms <= table_budget]
    assert history
    with pytest.raises(BudgetNotMet) as caught:
        close_the_loop(history, space, spec, None, parse_budget("0.4x"), table_budget, 2, _FixedUncompressed(slow),
                       lambda corrected, ms, r: _evaluations(space, truth, rows[corrected.latency(rows) <= ms][:5]))
    message = str(caught.value)
    assert "\n" not in message and message.startswith("--latency-budget 0.4x: no configuration")
    assert "the fastest measured, candidate #" in message
    fastest = min(caught.value.finalists.rows, key=lambda r: r.measured_ms / r.budget_ms)
    assert f"#{fastest.index} " in message and not any(r.meets_budget for r in caught.value.finalists.rows)
    assert len(caught.value.finalists.rounds) <= MAX_ROUNDS


class _FixedUncompressed(Device):
    """A device that runs the uncompressed model at ``truth.uncompressed_ms`` and everything else 3x slower."""

    def time_configs(self, spec, target, configs):
        first, *rest = super().time_configs(spec, target, configs)
        uncompressed = self.truth.uncompressed_ms
        return [Timing(uncompressed, uncompressed, uncompressed, 3), *rest]


# ------------------------------------------------------------------------------------------- final timing

def test_the_verdict_takes_the_fast_state_and_says_how_often_the_slow_one_was_seen():
    # Seven processes; four ran in a slow state that slows the INT8 engine by 37% and its FP32 baseline by 20%.
    pairs = [(0.57, 1.20), (0.78, 1.44), (0.58, 1.21), (0.79, 1.45), (0.56, 1.19), (0.78, 1.43), (0.80, 1.46)]
    latency = final_latency(pairs)
    assert latency.fast == [True, False, True, False, True, False, False]
    assert latency.engine_ms == pytest.approx(0.57) and latency.uncompressed_ms == pytest.approx(1.20)
    assert latency.engine_rounds_ms == [p[0] for p in pairs]  # every process's figure is kept
    assert "3 fast-state processes of 7" in latency.rule and "seen in 4" in latency.rule
    budget_ms, ratio, text = judge(parse_budget("0.5x"), latency)
    assert budget_ms == pytest.approx(0.60) and ratio < 1 and text.startswith("meets the budget")
    # The median over every process would have said otherwise (the slow state moves the ratio too).
    assert np.median([e for e, _ in pairs]) / (0.5 * np.median([u for _, u in pairs])) > 1
    assert latency.all_speedup < latency.speedup


def test_too_few_fast_processes_fall_back_to_every_process_and_say_so():
    # One lucky process far below the rest: a single process is no fast state to judge by.
    latency = final_latency([(0.50, 1.0), (0.70, 1.2), (0.71, 1.2), (0.69, 1.2), (0.72, 1.2)])
    assert latency.fast.count(True) == 1
    assert latency.engine_ms == pytest.approx(0.70) and "median of all 5 processes" in latency.rule


def test_more_processes_are_timed_until_the_fast_state_is_seen_often_enough():
    # Processes alternate lucky / slow: the first five give two fast ones, the loop goes on for a third.
    figures = iter([(0.60, 1.2), (0.80, 1.4), (0.61, 1.2), (0.80, 1.4), (0.81, 1.4), (0.60, 1.2), (0.8, 1.4)])
    first = next(figures)
    latency = measure_final(lambda: next(figures), first, rounds=5)
    assert len(latency.engine_rounds_ms) == 6 and latency.fast.count(True) == 3
    steady = iter([(0.6, 1.2)] * MAX_PROCESSES)
    assert len(measure_final(lambda: next(steady), (0.6, 1.2), rounds=5).engine_rounds_ms) == 5


# ------------------------------------------------------------------------------------- a real compress run

@pytest.mark.slow
def test_compress_with_an_optimistic_table_ends_with_an_engine_under_the_budget(monkeypatch, capsys, tmp_path,
                                                                                tiny_cifar):
    import json

    import torch

    from hirelc_deploy.jobs import compress as job
    from hirelc_deploy.models import resolve_model
    from hirelc_deploy.records import ModelRef

    from .conftest import hirelc
    from .test_discovery import NETS
    from .test_your_model import QUICK

    real = job.calibrated_space

    def optimistic(*args, **kwargs):
        # After calibration, every narrowed or removed option claims a third of its time: whatever the search
        # proposes near the budget runs far slower on the device.
        space, calibration, uncompressed_ms = real(*args, **kwargs)
        table = copy.deepcopy(space.table)
        for block in table.blocks:
            for values in block.latency_ms.values():
                values[:-1] = [v / 3 for v in values[:-1]]
        return SearchSpace(table, space.precisions), calibration, uncompressed_ms

    def capacity(self, widths, precisions):
        # Random weights score every candidate alike; a trained model's proxy rewards kept capacity, so the
        # finalists are the candidates the table puts just under the budget, as in a real run.
        kept = sum(widths) / sum(b.full_width for b in self.blocks)
        return EvalResult(kept, kept, 1 - kept, 0.0)

    monkeypatch.setattr(job, "calibrated_space", optimistic)
    monkeypatch.setattr(job.Evaluator, "compute", capacity)
    monkeypatch.setattr("hirelc_deploy.targets.backends.onnxruntime.run_isolated", lambda fn, *a, **k: fn(*a, **k))
    monkeypatch.setenv("HIRELC_TABLES", str(tmp_path / "tables"))
    target = tmp_path / "quick-cpu.toml"
    target.write_text(QUICK)
    weights = tmp_path / "w.pt"
    ref = ModelRef(f"{NETS}:resnet_projection", {"width": 24}, [3, 32, 32])
    torch.save(resolve_model(ref).make().state_dict(), weights)
    run = tmp_path / "run"
    code, out, err = hirelc(monkeypatch, capsys, "compress", "--model", f"{NETS}:resnet_projection",
                            "--model-arg", "width=24", "--input-shape", "3x32x32", "--weights", str(weights),
                            "--data", str(tiny_cifar), "--target", str(target), "--latency-budget", "0.7x",
                            "--strategy", "random",
                            "--evals", "8", "--finetune-images", "32", "--finetune-epochs", "0.5",
                            "--heldout-images", "40", "--test-per-class", "2", "--finalists", "2",
                            "--run-dir", str(run), "--json")
    assert code == 0, err
    finalists = json.loads((run / "finalists.json").read_text())
    rounds = finalists["rounds"]
    assert len(rounds) >= 2 and not rounds[0]["met"] and rounds[-1]["met"]
    assert [r["round"] for r in finalists["rows"] if r["chosen"]] == [rounds[-1]["round"]]
    summary = json.loads(out)
    assert summary["budget_ratio"] <= 1.05, summary["verdict"]
    assert "Closed loop on the budget" in (run / "report.html").read_text()
