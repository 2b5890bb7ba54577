import time

import pytest

from hirelc_agent.timing import measure_interleaved, summarize
from hirelc_agent.timing import MeasureSettings


def test_summarize_is_median_of_burst_medians_with_quartiles():
    t = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert t.median_ms == 3.0 and t.q1_ms == 2.0 and t.q3_ms == 4.0 and t.spread_ms == 2.0 and t.bursts == 5


def test_interleaved_measurement_orders_variants_and_counts_runs():
    calls = {"fast": 0, "slow": 0}

    def make(name, seconds):
        def run():
            calls[name] += 1
            time.sleep(seconds)
        return run

    settings = MeasureSettings(warmup_runs=1, bursts=3, max_bursts=3, runs_per_burst=4, max_retries=0,
                               max_wait_s=0.0, max_busy_cores=64.0)
    bursts = []
    result = measure_interleaved({"fast": make("fast", 0.001), "slow": make("slow", 0.004)}, settings,
                                 on_burst=lambda: bursts.append(1))
    assert calls == {"fast": 1 + 3 * 4, "slow": 1 + 3 * 4}
    assert len(bursts) == 6
    assert result["slow"].median_ms > result["fast"].median_ms
    assert result["fast"].median_ms == pytest.approx(1.0, abs=1.0)


def test_disturbed_measurements_get_extra_bursts():
    # The first two bursts are 'disturbed' (10x slower): the burst medians disagree, so more rounds run
    # until they agree or max_bursts is reached.
    state = {"calls": 0}

    def run():
        state["calls"] += 1
        time.sleep(0.01 if state["calls"] <= 2 * 3 else 0.001)

    settings = MeasureSettings(warmup_runs=0, bursts=3, max_bursts=12, runs_per_burst=3, max_retries=0,
                               max_wait_s=0.0, max_busy_cores=64.0, max_rel_spread=0.2)
    result = measure_interleaved({"a": run}, settings)
    assert 3 < result["a"].bursts <= 12
    assert result["a"].median_ms < 5.0
