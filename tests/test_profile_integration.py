"""Profile ResNet-20 on a real ONNX Runtime session with a reduced grid, then validate 3 configurations."""

import json
import math

import pytest

from hirelc_deploy.jobs.profile import measure_table
from hirelc_deploy.latency import load_table, validate
from hirelc_deploy.latency.profile import profiling_configs
from hirelc_deploy.models import get_model_spec
from hirelc_deploy.targets import current_fingerprint

pytestmark = pytest.mark.slow


def test_profiling_configs_cover_every_width_and_precision(tiny_target):
    uniform, mixed, isolated = profiling_configs(get_model_spec("resnet20"), tiny_target)
    assert len(uniform) == 4  # 2 width levels x 2 precisions
    assert {c.precisions[0] for c in uniform} == {"fp32", "int8"}
    assert {c.widths[-1] for c in uniform} == {32, 64}
    assert len(mixed) == 4 and all(len(set(c.precisions)) == 2 for c in mixed)
    # every interior boundary changes precision in both directions somewhere; the ends (FP32 stem and head)
    # in the one direction they can
    for k in range(10):
        seen = set()
        for c in mixed:
            chain = ["fp32", *c.precisions, "fp32"]
            if chain[k] != chain[k + 1]:
                seen.add((chain[k], chain[k + 1]))
        expected = {("fp32", "int8")} if k == 0 else {("int8", "fp32")} if k == 9 else {("fp32", "int8"),
                                                                                      ("int8", "fp32")}
        assert seen == expected, k
    assert [c.precisions[:3] for c in isolated] == [("int8", "fp32", "int8"), ("fp32", "int8", "fp32")]


def test_profile_and_validate_resnet20(tiny_target, tmp_path):
    steps = []
    spec = get_model_spec("resnet20")
    table = measure_table(spec, tiny_target, progress=lambda phase, n=1: steps.append(phase))
    assert {"exporting", "profiling", "timing"} <= set(steps)
    assert table.kind == "measured" and table.fingerprint == current_fingerprint(tiny_target).to_dict()
    assert len(table.blocks) == 9 and table.blocks[0].widths == [8, 16]
    assert table.fixed_ms > 0
    assert all(v > 0 for b in table.blocks for vals in b.latency_ms.values() for v in vals)
    saved = load_table(table.save(tmp_path / "t.json"))
    assert saved.predict([16] * 3 + [32] * 3 + [64] * 3, ["fp32"] * 9) == pytest.approx(
        table.predict([16] * 3 + [32] * 3 + [64] * 3, ["fp32"] * 9))

    report = validate(table, spec, tiny_target, count=3, seed=0)
    assert [r.label for r in report.rows] == ["fp32-full", "int8-half", "random0", "random1", "random2"]
    for row in report.rows:
        assert row.measured_ms > 0 and math.isfinite(row.abs_pct_error)
        assert row.predicted_ms == pytest.approx(table.predict(row.widths, row.precisions))
    summary = report.summary()
    assert summary["all"]["count"] == 5 and math.isfinite(summary["all"]["median_ape"])
    json.dumps(report.to_dict())


def test_a_profile_too_noisy_to_trust_is_measured_again_then_refused(tiny_target):
    from dataclasses import replace

    from hirelc_deploy.errors import NoisyDeviceError
    from hirelc_deploy.latency.profile import measured_table
    from hirelc_deploy.models import resolve_model
    from hirelc_deploy.records import ModelRef
    from hirelc_deploy.targets import backend_of

    from .test_discovery import NETS, SHAPE

    spec = resolve_model(ModelRef(f"{NETS}:vgg", {}, SHAPE))
    target = replace(tiny_target, measure=replace(tiny_target.measure, max_table_uncertainty=0.05))
    backend = backend_of(target)
    calls, real = [], []

    def measure(noisy_calls):
        def measured(*args, **kwargs):
            # One real profile, its measurements handed out again: only their spread matters here.
            real[:] = real or [backend.measure_configs(*args, **kwargs)]
            timings, observations, overhead = real[0]
            calls.append(args[1].measure.bursts)
            # Burst medians spread by 40% of the latency, or (the tiny target's own spread is anything) by none.
            spread = 0.2 if len(calls) <= noisy_calls else 0.0
            timings = [replace(t, q1_ms=(1 - spread) * t.median_ms, q3_ms=(1 + spread) * t.median_ms)
                       for t in timings]
            return timings, observations, overhead
        return measured

    fingerprint = current_fingerprint(target)
    table = measured_table(spec, target, measure(1), fingerprint)
    assert len(calls) == 2 and table.method["median_uncertainty"] == 0.0
    calls.clear()
    with pytest.raises(NoisyDeviceError) as caught:
        measured_table(spec, target, measure(2), fingerprint)
    assert len(calls) == 2 and calls[1] > calls[0]  # measured longer the second time
    message = str(caught.value)
    assert "\n" not in message and message.startswith("tiny-cpu: the device was too noisy")
    assert "uncertain by" in message and "no table written" in message
