"""A user's own model through the real ``hirelc`` entry point: ``inspect``, a tiny ``compress`` for each kind of
network users bring (tests/user_models/nets.py, none from the zoo), and every bad input a one-line error with
exit code 2 and nothing written."""

from __future__ import annotations

import json

import pytest
import torch

from hirelc_deploy.models import resolve_model
from hirelc_deploy.records import ModelRef

from .conftest import TINY_TARGET, fails, hirelc
from .test_discovery import NETS, SHAPE, USER_BLOCKS

SHAPE_FLAG = "x".join(map(str, SHAPE))


@pytest.mark.parametrize("factory", list(USER_BLOCKS))
def test_inspect_lists_every_block_and_what_is_left_alone(factory, monkeypatch, capsys):
    code, out, err = hirelc(monkeypatch, capsys, "inspect", "--model", f"{NETS}:{factory}", "--input-shape",
                            SHAPE_FLAG, "--target", "cpu-ort-1t", "--json")
    assert code == 0, err
    found = json.loads(out)
    assert [(u["name"], u["kind"], u["full_width"], u["prunable"], u["removable"]) for u in found["units"]] == \
        USER_BLOCKS[factory]
    assert all(u["precisions"] == ["fp32", "int8"] for u in found["units"])
    assert all(u["widths"][-1] == u["full_width"] for u in found["units"])
    assert found["left_alone"] and all(item["reason"] for item in found["left_alone"])
    assert found["num_classes"] == 10 and found["input_shape"] == SHAPE


def test_inspect_prints_a_table_and_checks_weights(monkeypatch, capsys, tmp_path):
    weights = tmp_path / "w.pt"
    torch.save({"state_dict": resolve_model(ModelRef(f"{NETS}:resnext", {}, SHAPE)).make().state_dict()}, weights)
    code, out, err = hirelc(monkeypatch, capsys, "inspect", "--model", f"{NETS}:resnext", "--input-shape", SHAPE_FLAG,
                            "--weights", str(weights))
    assert code == 0, err
    assert "layer2.1" in out and "grouped" in out and "left alone" in out and "fit the model" in out


def test_model_args_reach_the_factory(monkeypatch, capsys):
    code, out, err = hirelc(monkeypatch, capsys, "inspect", "--model", f"{NETS}:vgg", "--model-arg", "width=4",
                            "--model-arg", "num_classes=7", "--input-shape", SHAPE_FLAG, "--json")
    assert code == 0, err
    found = json.loads(out)
    assert found["num_classes"] == 7 and [u["full_width"] for u in found["units"]] == [4, 8]


# ------------------------------------------------------------------------------------------ tiny compress

# FP32 only, so the table profiles in seconds (INT8 export of these models: test_discovery.py); the verdict takes
# one process (the zoo's compress tests cover the fast-state rule over several).
QUICK = TINY_TARGET.replace('name = "tiny-cpu"', 'name = "quick-cpu"').replace(
    "width_fractions = [0.5, 1.0]", "width_fractions = [0.0, 0.5, 1.0]").replace(
    'precisions = ["fp32", "int8"]', 'precisions = ["fp32"]').replace("final_processes = 3", "final_processes = 1")
COMPRESS_SHAPE = [3, 32, 32]
# At width 8 the concat net's time is all per-run overhead (8 and 16 channels measure the same), so narrowing its
# branches saves ~5%, inside the table's noise at a 0.9x budget; at 32 the branches' convolutions dominate.
MODEL_ARGS = {"concat": {"width": 32}, "vgg": {"width": 32}}


@pytest.mark.slow
@pytest.mark.parametrize("factory", list(USER_BLOCKS))
def test_tiny_compress_of_a_users_model_ends_feasible_with_a_report(factory, monkeypatch, capsys, tmp_path,
                                                                     tiny_cifar):
    # Engines are timed in this process rather than fresh ones (the zoo's compress tests cover both paths).
    monkeypatch.setattr("hirelc_deploy.targets.backends.onnxruntime.run_isolated", lambda fn, *a, **k: fn(*a, **k))
    monkeypatch.setenv("HIRELC_TABLES", str(tmp_path / "tables"))
    target = tmp_path / "quick-cpu.toml"
    target.write_text(QUICK)
    weights = tmp_path / "w.pt"
    args = MODEL_ARGS.get(factory, {})
    torch.save(resolve_model(ModelRef(f"{NETS}:{factory}", args, COMPRESS_SHAPE)).make().state_dict(), weights)
    run = tmp_path / "run"
    model_args = [x for k, v in args.items() for x in ("--model-arg", f"{k}={v}")]
    streamed = []
    if factory == "resnet_projection":  # streams its images; one test image is corrupt (skipped and listed)
        bad = tiny_cifar / "test" / "class03" / "0000.png"
        bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
        streamed = ["--data-loading", "stream", "--workers", "2", "--skip-bad-images"]
    code, out, err = hirelc(monkeypatch, capsys, "compress", "--model", f"{NETS}:{factory}", "--input-shape",
                            "3x32x32", "--weights", str(weights), "--data", str(tiny_cifar), "--target", str(target),
                            "--latency-budget", "0.9x", "--strategy", "fisher-greedy", "--evals", "3",
                            "--finetune-images", "32",
                            "--finetune-epochs", "0.5", "--heldout-images", "40", "--test-per-class", "2",
                            "--finalists", "1", "--run-dir", str(run), "--json", *model_args, *streamed)
    assert code == 0, err
    summary = json.loads(out)
    if streamed:
        assert summary["bad_images"] == [str(bad)] and summary["test_images"] == 19
        assert json.loads((run / "config.json").read_text())["data"]["loading"] == "stream"
    assert summary["model"].startswith(f"nets.py:{factory}") and summary["measured_ms"] is not None
    policy = json.loads((run / "policy.json").read_text())
    assert [b["name"] for b in policy["blocks"]] == [row[0] for row in USER_BLOCKS[factory]]
    assert (run / "report.html").is_file() and (run / "artifacts" / "model.onnx").is_file()
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["input_shape"] == COMPRESS_SHAPE and config["model"].endswith("nets.py:" + factory)
    if factory == "resnext":  # resuming resolves the model from the run's records alone
        code, again, err = hirelc(monkeypatch, capsys, "compress", "--resume", str(run), "--json")
        assert code == 0, err
        assert json.loads(again)["measured_ms"] == summary["measured_ms"]


# -------------------------------------------------------------------------------------------- bad input

@pytest.fixture
def compress_args(tmp_path, tiny_target, tiny_cifar):
    """``hirelc compress`` on a user's model with every input valid unless overridden."""
    weights = tmp_path / "w.pt"
    torch.save(resolve_model(ModelRef(f"{NETS}:vgg", {}, SHAPE)).make().state_dict(), weights)
    run = tmp_path / "run"

    def args(**override):
        values = {"--model": f"{NETS}:vgg", "--input-shape": SHAPE_FLAG, "--weights": str(weights),
                  "--data": str(tiny_cifar), "--target": tiny_target.path, "--latency-budget": "0.8x",
                  "--run-dir": str(run), **override}
        return ["compress", *(x for k, v in values.items() if v is not None for x in (k, v))]

    return args, run, tmp_path


BAD_MODELS = {
    "raises": (f"{NETS}:raises", "the factory raised RuntimeError: out of coffee"),
    "missing file": ("tests/user_models/nope.py:vgg", "file tests/user_models/nope.py does not exist"),
    "missing factory": (f"{NETS}:nothing_here", "has no callable 'nothing_here'"),
    "not a module": (f"{NETS}:not_a_module", "returned dict, not a torch.nn.Module"),
    "untraceable": (f"{NETS}:untraceable", "cannot be traced in DataDependent.forward"),
    "unknown zoo name": ("vgg16", "unknown model 'vgg16'"),
}


@pytest.mark.parametrize("case", list(BAD_MODELS))
def test_a_bad_model_is_one_line_and_nothing_written(case, compress_args, monkeypatch, capsys):
    args, run, _ = compress_args
    model, message = BAD_MODELS[case]
    assert message in fails(monkeypatch, capsys, *args(**{"--model": model}))
    assert not run.exists()


def test_an_input_shape_the_model_rejects(compress_args, monkeypatch, capsys):
    args, run, _ = compress_args
    line = fails(monkeypatch, capsys, *args(**{"--input-shape": "1x16x16"}))
    assert "--input-shape 1x16x16: the model rejects it" in line and not run.exists()
    assert "--input-shape" in fails(monkeypatch, capsys, *args(**{"--input-shape": "3x16"}))


def test_a_checkpoint_of_another_architecture(compress_args, monkeypatch, capsys):
    args, run, tmp = compress_args
    other = tmp / "other.pt"
    torch.save(resolve_model(ModelRef(f"{NETS}:resnext", {}, SHAPE)).make().state_dict(), other)
    line = fails(monkeypatch, capsys, *args(**{"--weights": str(other)}))
    assert "does not fit TinyVGG" in line and "missing features.0.weight" in line and not run.exists()


def test_a_whole_pickled_model_is_refused_unread(compress_args, monkeypatch, capsys):
    args, run, tmp = compress_args
    pickled = tmp / "whole.pt"
    torch.save(resolve_model(ModelRef(f"{NETS}:vgg", {}, SHAPE)).make(), pickled)
    line = fails(monkeypatch, capsys, *args(**{"--weights": str(pickled)}))
    assert "refused to load" in line and "torch.save(model.state_dict(), PATH)" in line and not run.exists()


def test_a_head_whose_class_count_differs_from_the_data(compress_args, monkeypatch, capsys, tmp_path):
    args, run, tmp = compress_args
    weights = tmp / "seven.pt"
    torch.save(resolve_model(ModelRef(f"{NETS}:vgg", {"num_classes": 7}, SHAPE)).make().state_dict(), weights)
    line = fails(monkeypatch, capsys, *args(**{"--weights": str(weights)}), "--model-arg", "num_classes=7")
    assert "7" in line and "10" in line and not run.exists()


def test_bad_model_flags(compress_args, monkeypatch, capsys):
    args, run, _ = compress_args
    assert "--model-arg 'width'" in fails(monkeypatch, capsys, *args(), "--model-arg", "width")
    assert "--mean: 2 values for 3 input channels" in fails(monkeypatch, capsys, *args(**{"--mean": "0.5,0.5"}))
    assert "--std" in fails(monkeypatch, capsys, *args(**{"--std": "0.5,0,0.5"}))
    assert "--model-arg: the built-in model resnet20" in fails(monkeypatch, capsys,
                                                              *args(**{"--model": "resnet20"}), "--model-arg", "a=1")
    assert not run.exists()


def test_model_args_must_survive_a_json_round_trip():
    from hirelc_deploy.errors import InputError
    from hirelc_deploy.models.user_model import parse_model_args

    assert parse_model_args(["stages=(2, 2)", "name=wide", "se=True"]) == {"stages": [2, 2], "name": "wide",
                                                                           "se": True}
    with pytest.raises(InputError, match="--model-arg 'widths={1, 2}'"):
        parse_model_args(["widths={1, 2}"])


def test_a_policy_with_a_width_between_whole_groups_is_one_line(monkeypatch, capsys, tmp_path, tiny_target,
                                                                 tiny_cifar):
    spec = resolve_model(ModelRef(f"{NETS}:resnext", {}, SHAPE))
    weights = tmp_path / "w.pt"
    torch.save(spec.make().state_dict(), weights)
    names = [b.name for b in spec.blocks()]
    policy = {"schema_version": 1, "model": spec.name, "target": tiny_target.name, "latency_kind": "measured",
              "blocks": [{"name": n, "width": w, "precision": "fp32"} for n, w in zip(names, [16, 6, 32, 32])]}
    (tmp_path / "policy.json").write_text(json.dumps(policy))
    line = fails(monkeypatch, capsys, "export", "--model", f"{NETS}:resnext", "--input-shape", SHAPE_FLAG,
                 "--weights", str(weights), "--data", str(tiny_cifar), "--target", tiny_target.path,
                 "--policy", str(tmp_path / "policy.json"), "--out", str(tmp_path / "out"))
    assert "--policy: block 1: inner width 6 is not a multiple of 4" in line and not (tmp_path / "out").exists()
