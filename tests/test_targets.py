import pytest

from hirelc_deploy.errors import TargetError
from hirelc_deploy.targets import available_targets, current_fingerprint, load_target, parse_target

from .conftest import TINY_TARGET


def test_shipped_targets_parse():
    names = available_targets()
    assert {"cpu-ort-1t", "cpu-ort-b32"} <= set(names)
    t1, b32 = load_target("cpu-ort-1t"), load_target("cpu-ort-b32")
    assert (t1.threads, t1.batch_size) == (1, 1)
    assert (b32.threads, b32.batch_size) == (2, 32)
    assert t1.precisions == ("fp32", "int8")


def test_candidate_widths_round_to_channel_multiple(tiny_target):
    widths = tiny_target.candidate_widths(64)
    assert widths == [32, 64]
    assert all(w % tiny_target.channel_multiple == 0 for w in load_target("cpu-ort-1t").candidate_widths(64))
    assert tiny_target.candidate_widths(6) == [4, 6]  # never above full width, full width always offered
    assert tiny_target.candidate_widths(96, prunable=False) == [96]


def _write(tmp_path, text):
    path = tmp_path / "t.toml"
    path.write_text(text)
    return path


def test_unknown_key_is_named(tmp_path):
    with pytest.raises(TargetError, match=r"t\.toml: unknown key\(s\) turbo"):
        parse_target(_write(tmp_path, TINY_TARGET.replace("threads = 1", "threads = 1\nturbo = true")))


def test_precision_backend_cannot_run(tmp_path):
    with pytest.raises(TargetError, match="cannot run precision.*fp16"):
        parse_target(_write(tmp_path, TINY_TARGET.replace('["fp32", "int8"]', '["fp32", "fp16"]')))


def test_bad_values(tmp_path):
    with pytest.raises(TargetError, match="'threads' must be a positive int"):
        parse_target(_write(tmp_path, TINY_TARGET.replace("threads = 1", "threads = 0")))
    with pytest.raises(TargetError, match="unknown key.*\\[measure\\]"):
        parse_target(_write(tmp_path, TINY_TARGET.replace("bursts = 3", "burst = 3")))
    with pytest.raises(TargetError, match="not valid TOML"):
        parse_target(_write(tmp_path, "name = "))


def test_unknown_target_name():
    with pytest.raises(TargetError, match="--target: unknown target 'nope'"):
        load_target("nope")


def test_fingerprint_reflects_target_settings():
    one, b32 = current_fingerprint(load_target("cpu-ort-1t")), current_fingerprint(load_target("cpu-ort-b32"))
    assert one.runtime == "onnxruntime" and one.runtime_version
    diffs = one.differences(b32)
    assert any(d.startswith("threads") for d in diffs) and any(d.startswith("batch_size") for d in diffs)
    assert not one.differences(current_fingerprint(load_target("cpu-ort-1t")))
