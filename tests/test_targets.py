import json
import re
from pathlib import Path

import pytest

import hirelc_deploy.targets
from hirelc_deploy.errors import TargetError
from hirelc_deploy.targets import available_targets, current_fingerprint, load_target, parse_target
from hirelc_deploy.targets.catalog import SHIPPED_DIR, new_target, target_sources

from .conftest import TINY_TARGET, hirelc


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
    with pytest.raises(TargetError, match="'final_processes' must be a positive int"):
        parse_target(_write(tmp_path, TINY_TARGET.replace("final_processes = 3", "final_processes = 0")))
    # It belongs to [measure], not to the top level.
    with pytest.raises(TargetError, match="unknown key.*final_processes"):
        parse_target(_write(tmp_path, "final_processes = 3\n" + TINY_TARGET.replace("final_processes = 3\n", "")))


def test_final_processes_is_read_from_measure(tmp_path):
    assert parse_target(_write(tmp_path, TINY_TARGET)).final_processes == 3
    assert parse_target(_write(tmp_path, TINY_TARGET.replace("final_processes = 3\n", ""))).final_processes is None


def test_unknown_target_name():
    with pytest.raises(TargetError, match="--target: unknown target 'nope'"):
        load_target("nope")


def test_fingerprint_reflects_target_settings():
    one, b32 = current_fingerprint(load_target("cpu-ort-1t")), current_fingerprint(load_target("cpu-ort-b32"))
    assert one.runtime == "onnxruntime" and one.runtime_version
    diffs = one.differences(b32)
    assert any(d.startswith("threads") for d in diffs) and any(d.startswith("batch_size") for d in diffs)
    assert not one.differences(current_fingerprint(load_target("cpu-ort-1t")))


def _home(monkeypatch, tmp_path):
    """A fresh ``$HIRELC_HOME`` for one test (the session's is shared by every test)."""
    home = tmp_path / "home"
    monkeypatch.setenv("HIRELC_HOME", str(home))
    return home


def test_shipped_targets_are_package_data(monkeypatch, tmp_path):
    _home(monkeypatch, tmp_path)
    sources = target_sources()
    assert {s.origin for s in sources} == {"shipped"}
    assert {"cpu-ort-1t", "cpu-ort-b32", "trt-h100-b1", "trt-h100-b32"} <= {s.name for s in sources}
    assert all(s.path.parent == SHIPPED_DIR for s in sources)
    assert SHIPPED_DIR.parent == Path(hirelc_deploy.targets.__file__).parent
    assert Path(load_target("cpu-ort-1t").path) == SHIPPED_DIR / "cpu-ort-1t.toml"


def test_user_target_shadows_the_shipped_one(monkeypatch, tmp_path):
    targets = _home(monkeypatch, tmp_path) / "targets"
    targets.mkdir(parents=True)
    (targets / "cpu-ort-1t.toml").write_text((SHIPPED_DIR / "cpu-ort-1t.toml").read_text().replace(
        "threads = 1", "threads = 3"))
    (targets / "tiny-cpu.toml").write_text(TINY_TARGET)
    sources = target_sources()
    assert [(s.name, s.origin) for s in sources[:2]] == [("cpu-ort-1t", "user"), ("tiny-cpu", "user")]
    assert sources[0].shadows == SHIPPED_DIR / "cpu-ort-1t.toml" and sources[1].shadows is None
    assert [s.name for s in sources].count("cpu-ort-1t") == 1
    assert load_target("cpu-ort-1t").threads == 3
    assert available_targets() == sorted({s.name for s in sources}) and "tiny-cpu" in available_targets()
    # $HIRELC_PROFILES replaces the user directory.
    monkeypatch.setenv("HIRELC_PROFILES", str(tmp_path / "elsewhere"))
    assert load_target("cpu-ort-1t").threads == 1 and "tiny-cpu" not in available_targets()


def _cpu_model_name() -> str | None:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    return next((line.partition(":")[2].strip() for line in lines if line.startswith("model name")), None)


def test_new_target_is_this_cpu_and_parses(monkeypatch, tmp_path):
    home = _home(monkeypatch, tmp_path)
    path = new_target("box-4t", threads=4, batch_size=8)
    assert path == home / "targets" / "box-4t.toml"
    target, shipped = parse_target(path), load_target("cpu-ort-1t")
    assert (target.name, target.threads, target.batch_size) == ("box-4t", 4, 8)
    assert (target.backend, target.execution_provider, target.precisions) == ("onnxruntime", "CPUExecutionProvider",
                                                                              ("fp32", "int8"))
    assert target.channel_multiple == shipped.channel_multiple
    assert (target.width_fractions, target.measure) == (shipped.width_fractions, shipped.measure)
    assert "4 intra-op threads" in target.description
    if _cpu_model_name():
        assert _cpu_model_name() in target.description
    assert load_target("box-4t") == target
    assert parse_target(new_target("fp32-only", 1, 1, ("fp32",), directory=tmp_path)).precisions == ("fp32",)


@pytest.mark.parametrize("kwargs,needle", [
    ({"name": "a/b"}, "NAME 'a/b'"),
    ({"name": "../up"}, "NAME '../up'"),
    ({"name": ".hidden"}, "NAME '.hidden'"),
    ({"name": "x.toml"}, "NAME 'x.toml'"),
    ({"threads": 0}, "--threads"),
    ({"batch_size": -1}, "--batch"),
    ({"precisions": ("fp32", "fp16")}, "--precisions: onnxruntime cannot run fp16"),
    ({"precisions": ()}, "--precisions"),
])
def test_new_target_refuses_bad_arguments(monkeypatch, tmp_path, kwargs, needle):
    home = _home(monkeypatch, tmp_path)
    with pytest.raises(TargetError) as caught:
        new_target(**{"name": "ok", "threads": 1, "batch_size": 1, **kwargs})
    assert needle in str(caught.value) and "\n" not in str(caught.value)
    assert not home.exists()


def test_new_target_never_overwrites_without_force(monkeypatch, tmp_path):
    path = new_target("box", 2, 1, directory=tmp_path)
    before = path.read_text()
    with pytest.raises(TargetError, match=f"^{re.escape(str(path))}: already exists .*--force") as caught:
        new_target("box", 3, 1, directory=tmp_path)
    assert "\n" not in str(caught.value) and path.read_text() == before
    assert parse_target(new_target("box", 3, 1, directory=tmp_path, force=True)).threads == 3
    assert [p.name for p in tmp_path.iterdir()] == ["box.toml"]  # no temporary file left behind


def test_cli_lists_targets_with_their_origin(monkeypatch, capsys, tmp_path):
    targets = _home(monkeypatch, tmp_path) / "targets"
    targets.mkdir(parents=True)
    (targets / "cpu-ort-b32.toml").write_text((SHIPPED_DIR / "cpu-ort-b32.toml").read_text())
    code, out, _ = hirelc(monkeypatch, capsys, "targets", "--json")
    listing = json.loads(out)
    assert code == 0 and set(listing) == set(available_targets())
    assert listing["cpu-ort-b32"] == {
        "path": str(targets / "cpu-ort-b32.toml"), "origin": "user", "shadows": str(SHIPPED_DIR / "cpu-ort-b32.toml"),
        "backend": "onnxruntime", "execution_provider": "CPUExecutionProvider", "precisions": ["fp32", "int8"],
        "threads": 2, "batch_size": 32, "description": "ONNX Runtime CPU, 2 intra-op threads, batch 32",
        "device": None}
    assert listing["cpu-ort-1t"]["origin"] == "shipped" and listing["cpu-ort-1t"]["shadows"] is None
    code, out, _ = hirelc(monkeypatch, capsys, "targets")
    lines = out.splitlines()
    row = next(line for line in lines if line.startswith("cpu-ort-b32 "))
    assert code == 0 and "user (shadows shipped)" in row and "threads 2 batch 32" in row
    assert str(targets / "cpu-ort-b32.toml") in lines[lines.index(row) + 1]


def test_cli_new_target_then_use_it(monkeypatch, capsys, tmp_path):
    home = _home(monkeypatch, tmp_path)
    code, out, _ = hirelc(monkeypatch, capsys, "targets", "new", "my-box", "--threads", "2", "--batch", "4",
                           "--precisions", "fp32", "--json")
    written = home / "targets" / "my-box.toml"
    assert code == 0 and json.loads(out) == {"name": "my-box", "path": str(written),
                                             "usage": "hirelc profile --model resnet20 --target my-box"}
    target = load_target("my-box")
    assert (target.threads, target.batch_size, target.precisions) == (2, 4, ("fp32",))
    code, out, _ = hirelc(monkeypatch, capsys, "targets", "--json")
    assert json.loads(out)["my-box"]["origin"] == "user"

    code, _, err = hirelc(monkeypatch, capsys, "targets", "new", "my-box", "--threads", "8", "--batch", "1")
    assert code == 2 and err.strip() == f"error: {written}: already exists (pass --force to overwrite it)"
    assert load_target("my-box").threads == 2
    code, out, _ = hirelc(monkeypatch, capsys, "targets", "new", "my-box", "--threads", "8", "--batch", "1",
                           "--force")
    assert code == 0 and f"wrote {written}" in out and "hirelc profile --model resnet20 --target my-box" in out
    assert load_target("my-box").threads == 8
    code, _, err = hirelc(monkeypatch, capsys, "targets", "new", "gpu", "--threads", "1", "--batch", "1",
                           "--precisions", "fp32,fp8")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--precisions: onnxruntime cannot run fp8" in err
    assert not (home / "targets" / "gpu.toml").exists()
