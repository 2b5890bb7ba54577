"""The search: latency model of the space, the action wall, budgets, and every strategy on a tiny model."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hirelc_deploy.budget import parse_budget
from hirelc_deploy.errors import InputError
from hirelc_deploy.latency.table import LatencyTable
from hirelc_deploy.search import SearchSpace
from hirelc_deploy.search.prior import DamageModel
from hirelc_deploy.search.registry import STRATEGIES, get_strategy
from hirelc_deploy.search.run import run_search
from hirelc_deploy.search.wall import repair, repair_batch
from hirelc_deploy.sensitivity import BlockSensitivity, Sensitivity

from .conftest import random_table


def flat_sensitivity(table: LatencyTable, seed: int) -> Sensitivity:
    """Random per-channel Fisher scores shaped like ``table``'s blocks."""
    rng = np.random.default_rng(seed)
    rows = [BlockSensitivity(b.name, 100, float(rng.random()), float(rng.random()), float(rng.random()),
                             [rng.random(b.full_width).tolist()], [], float(rng.random()) * 1e-3)
            for b in table.blocks]
    return Sensitivity("random", 0, rows)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), blocks=st.integers(1, 6))
def test_space_latency_matches_the_table(seed, blocks):
    table = random_table(seed, blocks)
    space = SearchSpace(table)
    xs = space.random(np.random.default_rng(seed), 20)
    fast = space.latency(xs)
    for x, ms in zip(xs, fast):
        widths, precisions = space.decode(x)
        assert ms == pytest.approx(table.predict(widths, precisions), abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), blocks=st.integers(1, 6))
def test_fastest_configuration_is_the_fastest(seed, blocks):
    table = random_table(seed, blocks)
    space = SearchSpace(table)
    sampled = space.latency(space.random(np.random.default_rng(seed), 500))
    assert space.fastest_ms <= sampled.min() + 1e-9


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 10_000), blocks=st.integers(1, 6), removable=st.booleans(),
       where=st.floats(0.0, 1.0))
def test_action_wall_never_returns_an_infeasible_policy(seed, blocks, removable, where):
    table = random_table(seed, blocks, removable)
    space = SearchSpace(table)
    prior = DamageModel(space, flat_sensitivity(table, seed))
    budget = space.fastest_ms + where * (space.uncompressed_ms - space.fastest_ms)
    xs = space.random(np.random.default_rng(seed + 1), 16)
    xs = np.vstack([xs, space.full_index[None]])
    for x in xs:
        fixed = repair(space, prior, x, budget)
        assert space.latency(fixed[None])[0] <= budget + 1e-9
        assert space.valid[np.arange(space.n), fixed].all()
    assert (space.latency(repair_batch(space, prior, xs, budget)) <= budget + 1e-9).all()


def test_action_wall_leaves_feasible_configurations_alone():
    table = random_table(3, 4)
    space = SearchSpace(table)
    prior = DamageModel(space, flat_sensitivity(table, 3))
    x = space.full_index
    assert (repair(space, prior, x, space.uncompressed_ms + 1.0) == x).all()


def test_budget_below_the_fastest_configuration_names_it():
    space = SearchSpace(random_table(5, 3))
    budget = parse_budget(f"{space.fastest_ms * 0.5}ms")
    with pytest.raises(InputError, match=f"{space.fastest_ms:.4f}"):
        budget.resolve(space.uncompressed_ms, space.uncompressed_ms, space.fastest_ms)


def test_resolved_budget_is_in_device_ms_and_table_units():
    resolved = parse_budget("0.5x").resolve(uncompressed_ms=3.0, table_uncompressed_ms=2.0, table_fastest_ms=0.5)
    assert resolved.drift == pytest.approx(1.5)
    assert resolved.ms == pytest.approx(1.5) and resolved.table_ms == pytest.approx(1.0)


@pytest.mark.parametrize("text,ms,relative", [("0.6ms", 0.6, False), ("600us", 0.6, False), ("0.5x", 0.5, True),
                                              (" 1.25 ms", 1.25, False)])
def test_budget_parsing(text, ms, relative):
    budget = parse_budget(text)
    assert budget.relative is relative
    assert budget.ms_against(2.0) == pytest.approx(ms * 2.0 if relative else ms)


@pytest.mark.parametrize("text", ["", "fast", "0.6", "-1ms", "0ms", "1.5x", "2s"])
def test_bad_budget_is_one_line_naming_the_flag(text):
    with pytest.raises(InputError, match="--latency-budget") as info:
        parse_budget(text)
    assert "\n" not in str(info.value)


def test_unknown_strategy_lists_the_known_ones():
    with pytest.raises(InputError, match="--strategy") as info:
        get_strategy("nope")
    assert all(name in str(info.value) for name in STRATEGIES)


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_every_strategy_returns_feasible_policies(tiny_problem, strategy):
    space, sensitivity, evaluator = tiny_problem
    budget = space.uncompressed_ms * 0.5
    outcome = run_search(strategy, space, sensitivity, evaluator, budget, evals=4, seed=0)
    assert 1 <= len(outcome.history) <= 4
    for e in outcome.history:
        assert space.table.predict(list(e.widths), list(e.precisions)) <= budget + 1e-9
    best = outcome.best
    assert best.result.top1 == max(e.result.top1 for e in outcome.history)
    policy = space.policy(best.options)
    assert policy.predicted_latency_ms <= budget + 1e-9


@pytest.mark.parametrize("strategy", ["hirelc", "rl-pruner", "random"])
def test_search_is_deterministic_for_a_seed(tiny_problem, strategy):
    space, sensitivity, evaluator = tiny_problem
    budget = space.uncompressed_ms * 0.45
    runs = [[e.options for e in run_search(strategy, space, sensitivity, evaluator, budget, 6, seed=s).history]
            for s in (1, 1, 2)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_hirelc_spends_its_whole_evaluation_budget_under_a_tight_budget(tiny_problem):
    """Near the fastest configuration the agents soon converge on what they know; the search must still find
    new configurations for every evaluation it was given (it stopped at a fraction of them before)."""
    space, sensitivity, evaluator = tiny_problem
    budget = space.fastest_ms + 0.1 * (space.uncompressed_ms - space.fastest_ms)
    outcome = run_search("hirelc", space, sensitivity, evaluator, budget, evals=24, seed=3)
    assert len(outcome.history) == 24
    assert len({e.options for e in outcome.history}) == 24
    assert all(space.table.predict(list(e.widths), list(e.precisions)) <= budget + 1e-9 for e in outcome.history)
    assert 0.0 < outcome.evaluating_share <= 1.0
    assert outcome.evaluation_seconds == pytest.approx(sum(e.result.seconds for e in outcome.history))
