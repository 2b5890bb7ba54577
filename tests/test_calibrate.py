"""Calibrating a table against end-to-end measurements."""

from __future__ import annotations

import numpy as np
import pytest

from hirelc_deploy.latency.calibrate import PARTS, fit

from .conftest import random_table


def _configs(table, rng, count):
    configs = []
    for _ in range(count):
        widths = [int(rng.choice([w for w in b.widths if w > 0])) for b in table.blocks]
        precisions = [str(rng.choice(["fp32", "int8"])) for _ in table.blocks]
        configs.append((widths, precisions))
    return configs


def test_parts_add_up_to_the_prediction():
    table = random_table(7, 5)
    for widths, precisions in _configs(table, np.random.default_rng(0), 20):
        assert sum(table.predict_parts(widths, precisions)) == pytest.approx(table.predict(widths, precisions))


def test_fit_recovers_per_part_factors_from_exact_measurements():
    table = random_table(11, 6)
    truth = np.array([1.1, 1.4, 2.0])
    configs = _configs(table, np.random.default_rng(1), 12)
    measured = [float(np.array(table.predict_parts(w, p)) @ truth) for w, p in configs]
    calibration = fit(table, configs, measured)
    got = np.array([calibration.factors[p] for p in PARTS])
    # The large parts are recovered; the boundaries are a few % of each total here, so the pull towards 1
    # holds their factor back, and the calibrated table must still predict within a few %.
    assert np.abs(got - truth)[:2].max() < 0.1
    assert 1.0 < got[2] <= truth[2]
    calibrated = calibration.apply(table)
    for (w, p), m in zip(configs, measured):
        assert calibrated.predict(w, p) == pytest.approx(m, rel=0.05)
    assert table.predict(*configs[0]) != pytest.approx(calibrated.predict(*configs[0]), rel=0.01)


def test_fit_keeps_unused_parts_and_resists_a_single_outlier():
    table = random_table(13, 4)
    fp32_only = [([b.full_width for b in table.blocks], ["fp32"] * 4),
                 ([b.widths[1] for b in table.blocks], ["fp32"] * 4)]
    measured = [table.predict(*fp32_only[0]) * 1.1, table.predict(*fp32_only[1]) * 1.1]
    calibration = fit(table, fp32_only, measured)
    assert calibration.factors["int8"] == 1.0 and calibration.factors["boundaries"] == 1.0
    assert calibration.factors["fp32"] == pytest.approx(1.1, abs=0.02)
