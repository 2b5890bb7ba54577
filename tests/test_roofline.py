"""The roofline (predicted) table for NVIDIA targets: counts, ordering, labelling, and the CLI around it."""

from __future__ import annotations

import json
import sys

import pytest

from hirelc_deploy.cli import main
from hirelc_deploy.errors import TargetError
from hirelc_deploy.latency.roofline import _kernels, predict_table
from hirelc_deploy.models import get_model_spec
from hirelc_deploy.targets import load_target, parse_target

from .conftest import toy_table
from .test_bad_input import fails

GPU_TARGETS = ["trt-h100-b1", "trt-h100-b32"]


def test_kernel_counts_of_a_resnet20_block_by_hand():
    spec = get_model_spec("resnet20")
    model = spec.build()
    infos = spec.blocks()
    per_block, outside, boundaries = _kernels(model, infos, [b.full_width for b in infos], (1, 3, 32, 32))
    # layer1.0: two 3x3 convolutions 16 -> 16 on 32x32, batch 1.
    macs = 32 * 32 * 16 * 16 * 9
    activation, weights = 16 * 32 * 32, 16 * 16 * 9
    assert [k.macs for k in per_block[0]] == [macs, macs]
    # The second convolution also reads the shortcut for the fused residual add.
    assert [k.elements for k in per_block[0]] == [2 * activation + weights, 3 * activation + weights]
    assert boundaries[0] == activation and boundaries[-1] == 64 * 8 * 8
    # Outside the blocks: the stem convolution (3 -> 16) and the classifier (64 -> 10).
    assert [k.macs for k in outside] == [32 * 32 * 16 * 3 * 9, 64 * 10]


@pytest.mark.parametrize("target", GPU_TARGETS)
@pytest.mark.parametrize("model", ["resnet20", "resnet56"])
def test_fewer_channels_and_lower_precision_are_never_predicted_slower(model, target, tmp_path):
    # With fp8 added (the shipped targets leave it out: see their comments), so its ordering is checked too.
    text = open(load_target(target).path).read()
    with_fp8 = tmp_path / f"{target}.toml"
    with_fp8.write_text(text.replace('precisions = ["fp32", "fp16", "int8"]', 'precisions = ["fp32", "fp16", "int8", "fp8"]'))
    table = predict_table(get_model_spec(model), parse_target(with_fp8))
    assert "fp8" in table.precisions
    assert table.kind == "predicted" and "roofline" in table.method["kind"]
    for block in table.blocks:
        lat = block.latency_ms
        for p, values in lat.items():
            assert values == sorted(values), f"{block.name} {p}: a narrower width predicted slower"
        for i in range(len(block.widths)):
            assert lat["fp8"][i] <= lat["fp16"][i] <= lat["fp32"][i]
            assert lat["int8"][i] <= lat["fp16"][i]
    n = len(table.blocks)
    uniform = {f: [min((w for w in b.widths if w > 0), key=lambda w: abs(w - f * b.full_width)) for b in table.blocks]
               for f in (0.25, 0.5, 1.0)}
    for widths in uniform.values():
        fp32, fp16, int8 = (table.predict(widths, [p] * n) for p in ("fp32", "fp16", "int8"))
        assert int8 <= fp16 <= fp32
    for p in table.precisions:
        assert table.predict(uniform[0.25], [p] * n) <= table.predict(uniform[0.5], [p] * n) <= \
               table.predict(uniform[1.0], [p] * n)


def test_batch_32_is_slower_per_call_and_faster_per_image():
    one, many = (predict_table(get_model_spec("resnet56"), load_target(t)) for t in GPU_TARGETS)
    full = [b.full_width for b in one.blocks]
    b1, b32 = (t.predict(full, ["fp16"] * len(full)) for t in (one, many))
    assert b1 < b32 < 32 * b1


def test_target_without_roofline_or_with_missing_peaks(tmp_path, tiny_target):
    with pytest.raises(TargetError, match="no \\[roofline\\] section"):
        predict_table(get_model_spec("resnet20"), tiny_target)
    text = open(load_target("trt-h100-b1").path).read()
    bad = tmp_path / "gpu.toml"
    bad.write_text(text.replace(", int8 = 1979.0", ""))
    with pytest.raises(TargetError, match="gpu.toml: \\[roofline\\] peak_tops needs a positive figure for int8"):
        parse_target(bad)
    bad.write_text(text.replace("launch_us = 2.0", "launch_us = 2.0\nclock_ghz = 1.9"))
    with pytest.raises(TargetError, match="unknown key\\(s\\) clock_ghz"):
        parse_target(bad)


def test_profile_predict_writes_a_labelled_table_and_never_replaces_a_measured_one(tmp_path, monkeypatch,
                                                                                    capsys):
    monkeypatch.setenv("HIRELC_TABLES", str(tmp_path / "tables"))
    run = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["hirelc", "profile", "--model", "resnet20", "--target", "trt-h100-b1",
                                      "--predict", "--run-dir", str(run), "--json"])
    main()
    summary = json.loads(capsys.readouterr().out)
    stored = json.loads((tmp_path / "tables" / "resnet20__trt-h100-b1.json").read_text())
    assert stored["kind"] == "predicted" and summary["kind"] == "predicted"
    assert summary["predicted_uncompressed_ms"]["int8"] <= summary["predicted_uncompressed_ms"]["fp32"]
    assert "PREDICTED" in (run / "report.html").read_text()

    measured = toy_table().to_dict()
    (tmp_path / "tables" / "resnet20__trt-h100-b1.json").write_text(json.dumps(measured))
    error = fails(monkeypatch, capsys, "profile", "--model", "resnet20", "--target", "trt-h100-b1", "--predict",
                  "--run-dir", str(tmp_path / "run2"))
    assert "holds a measured table" in error and not (tmp_path / "run2").exists()
    error = fails(monkeypatch, capsys, "profile", "--model", "resnet20", "--target", "trt-h100-b1",
                  "--run-dir", str(tmp_path / "run3"))
    assert "--predict" in error and "NVIDIA GPU" in error
