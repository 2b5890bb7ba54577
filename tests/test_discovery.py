"""Automatic block discovery: the zoo's blocks as their architectures define them, and the models users bring
(defined only in tests/user_models/nets.py): what is found, what is left alone and why, physical pruning, and
an ONNX Runtime INT8 export that passes its checks, and the TensorRT-bound graph with each block in its precision."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from hirelc_deploy.artifacts.artifact import MODEL_NAME, write_artifact
from hirelc_deploy.artifacts.qdq_check import placement_problems
from hirelc_deploy.artifacts.trt_onnx import block_precisions, write_trt_onnx
from hirelc_deploy.models import MODELS, UntraceableModel, discover, get_model_spec, resolve_model
from hirelc_deploy.policy import Policy
from hirelc_deploy.records import ModelRef
from hirelc_deploy.runtime.onnxruntime import reference_outputs

from .conftest import inner_widths

NETS = "tests/user_models/nets.py"
SHAPE = [3, 16, 16]


def user(factory: str, **args):
    return resolve_model(ModelRef(f"{NETS}:{factory}", args, SHAPE))


def summary(spec) -> list[tuple]:
    return [(b.name, b.kind, b.full_width, b.prunable, b.removable) for b in spec.blocks()]


# --------------------------------------------------------------------------------------------------- the zoo

def _cifar_resnet(depth: int) -> list[tuple]:
    n = (depth - 2) // 6
    return [(f"layer{s}.{i}", "basic", planes, True, True)
            for s, planes in enumerate((16, 32, 64), start=1) for i in range(n)]


def _imagenet_resnet(kind: str, layers: list[int]) -> list[tuple]:
    return [(f"layer{s}.{i}", kind, planes, True, True)
            for s, (planes, n) in enumerate(zip((64, 128, 256, 512), layers), start=1) for i in range(n)]


def _mobilenet_v2() -> list[tuple]:
    # (expand ratio, output channels, repeats, first stride): Sandler et al. 2018, Table 2.
    settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1)]
    rows, cin, index = [], 32, 1
    for t, c, n, s in settings:
        for i in range(n):
            stride = s if i == 0 else 1
            rows.append((f"features.{index}", "inverted_residual", cin * t, t != 1, stride == 1 and cin == c))
            cin, index = c, index + 1
    return rows


@pytest.mark.parametrize("name", list(MODELS))
def test_discovery_finds_exactly_the_zoo_blocks(name):
    expected = {
        **{f"resnet{d}": _cifar_resnet(d) for d in (20, 32, 44, 56)},
        "resnet18": _imagenet_resnet("basic", [2, 2, 2, 2]),
        "resnet50": _imagenet_resnet("bottleneck", [3, 4, 6, 3]),
        "mobilenet_v2": _mobilenet_v2(),
    }[name]
    assert summary(get_model_spec(name)) == expected


def test_zoo_stem_and_classifier_are_left_alone_with_their_reason():
    left = {item.layers[0]: item.reason for item in get_model_spec("resnet18").discovery.left_alone}
    assert "residual stream" in left["conv1"]
    assert "classifier" in left["fc"]
    left = {item.layers[0]: item.reason for item in get_model_spec("mobilenet_v2").discovery.left_alone}
    assert "block features.1" in left["features.0.0"]  # the stem feeds the depthwise conv of the first block
    assert "classifier" in left["features.18.0"]


# ------------------------------------------------------------------------------------------ users' models

USER_BLOCKS = {
    # A plain stack is split into pairs of convolutions: the pair's inner channels narrow, its output stays.
    "vgg": [("features.0-6", "chain", 8, True, False), ("features.7-13", "chain", 16, True, False)],
    "resnet_projection": [("stage_a.0", "basic", 8, True, True), ("stage_a.1", "basic", 8, True, True),
                          ("stage_b.0", "basic", 16, True, True), ("stage_b.1", "basic", 16, True, True)],
    "mobilenet_se": [("blocks.0", "inverted_residual+se", 32, True, True),
                     ("blocks.1", "inverted_residual+se", 32, True, False),
                     ("blocks.2", "inverted_residual+se", 64, True, True)],
    "resnext": [("layer1.0", "grouped", 16, True, True), ("layer1.1", "grouped", 16, True, True),
                ("layer2.0", "grouped", 32, True, True), ("layer2.1", "grouped", 32, True, True)],
    "concat": [("mixed.left", "chain", 8, True, False), ("mixed.right", "chain", 8, True, False)],
}


# Shapes that tripped simpler rules: one ReLU module called after every layer, with the classifier beside the
# layers; a residual block whose branch is one Sequential and whose shortcut is a projection (RegNet); a
# squeeze-excitation gate on a bottleneck's branch (SENet); a hand-written hard-swish (x + 3 is no residual add).
MORE_BLOCKS = {
    "shared_relu": [("conv1-bn2", "chain", 8, True, False), ("conv3-pool", "chain", 16, True, False)],
    "mixture": [("wrapped.0", "basic", 8, True, True), ("wrapped.1", "basic", 16, True, True),
                ("se.0", "bottleneck+se", 8, True, True), ("se.1", "bottleneck+se", 8, True, True)],
    "hardswish": [("features.0-1", "chain", 8, True, False), ("features.2-3", "chain", 8, True, False)],
}


@pytest.mark.parametrize("factory", list(USER_BLOCKS) + list(MORE_BLOCKS))
def test_discovery_on_users_models(factory):
    assert summary(user(factory)) == {**USER_BLOCKS, **MORE_BLOCKS}[factory]


def test_a_shared_module_and_the_classifier_belong_to_no_block():
    spec = user("shared_relu")
    assert all("relu" not in m and "fc" not in m for b in spec.blocks() for m in b.modules)
    assert [b.groups[0].root for b in user("mixture").blocks()][2:] == ["se.0.conv1", "se.1.conv1"]
    assert [g.root for g in user("mixture").blocks()[2].groups] == ["se.0.conv1", "se.0.conv2", "se.0.se.reduce"]


def test_what_cannot_narrow_is_left_alone_with_the_reason():
    left = {item.layers[0]: item.reason for item in user("concat").discovery.left_alone}
    assert "block mixed.left" in left["stem.0"]  # the stem's channels are both branches' input
    assert "classifier" in left["post.0"]
    left = {item.layers[0]: item.reason for item in user("vgg").discovery.left_alone}
    assert "classifier" in left["features.14"]
    left = {item.layers[0]: item.reason for item in user("resnet_projection").discovery.left_alone}
    assert "residual stream" in left["entry.0"]


def test_concatenated_channels_are_never_narrowed():
    spec = user("concat")
    model = spec.build([4, 4])
    # Each branch keeps its output width, so the concatenation (and the convolution after it) is unchanged.
    assert model.mixed.left[3].out_channels == 8 and model.mixed.right[3].out_channels == 8
    assert model.post[0].in_channels == 16
    assert model.mixed.left[0].out_channels == 4 and model.mixed.right[0].out_channels == 4


def test_squeeze_excitation_and_grouped_groups_shrink_with_their_block():
    block = user("mobilenet_se").build([16, 32, 32]).blocks[0].body
    assert (block[0].out_channels, block[3].out_channels, block[7].in_channels) == (16, 16, 16)
    # The gate's own hidden channels shrink by the same fraction; its output channels are the block's.
    assert (block[6].reduce.in_channels, block[6].reduce.out_channels, block[6].expand.out_channels) == (16, 4, 16)
    unit = user("resnext").build([16, 8, 32, 32]).layer1[1]
    # Whole convolution groups go (4 channels each): 2 of the 4 remain, each still 4 channels wide.
    grouped = unit.conv_grouped
    assert (grouped.groups, grouped.in_channels, grouped.out_channels) == (2, 8, 8)
    assert grouped.weight.shape == (8, 4, 3, 3)
    assert (unit.conv_reduce.out_channels, unit.conv_expand.in_channels) == (8, 8)
    with pytest.raises(ValueError, match="multiple of 4"):
        user("resnext").build([16, 6, 32, 32])


def _half(spec) -> list[int]:
    """Every other removable block removed, every prunable one at about half width (whole groups)."""
    widths = []
    for i, b in enumerate(spec.blocks()):
        if b.removable and i % 2 == 0:
            widths.append(0)
        elif b.prunable:
            widths.append(max(b.step, b.full_width // 2 // b.step * b.step))
        else:
            widths.append(b.full_width)
    return widths


@pytest.mark.parametrize("factory", list(USER_BLOCKS) + list(MORE_BLOCKS))
def test_physical_pruning_keeps_outputs_finite_and_shapes_right(factory):
    spec = user(factory)
    full = spec.make()
    widths = _half(spec)
    model = spec.build(widths)
    out = model(torch.randn(3, *SHAPE))
    assert out.shape == (3, 10) and torch.isfinite(out).all()
    assert inner_widths(model, spec.blocks()) == widths
    assert sum(p.numel() for p in model.parameters()) < sum(p.numel() for p in full.parameters())


def test_a_removed_block_computes_its_shortcut_alone():
    spec = user("resnet_projection")
    model = spec.make()
    block = model.stage_b[0]
    x = torch.relu(torch.randn(2, 8, 16, 16))
    with torch.no_grad():
        expected = torch.relu(block.proj(x))  # a projection shortcut's output is not a ReLU output: kept
    spec.shrink(model, [8, 8, 0, 16])
    removed = model.stage_b[0]
    assert isinstance(removed, torch.fx.GraphModule) and not hasattr(removed, "squeeze")
    with torch.no_grad():
        assert torch.allclose(removed(x), expected)


def test_a_wrapped_block_with_a_projection_shortcut_is_removed_to_its_projection():
    spec = user("mixture")
    model = spec.make()
    x = torch.relu(torch.randn(2, 8, 16, 16))
    with torch.no_grad():
        expected = torch.relu(model.wrapped[1].proj(x))
        spec.shrink(model, [8, 0, 8, 8])
        assert torch.allclose(model.wrapped[1](x), expected)


def test_a_removed_identity_block_drops_its_relu_and_every_parameter():
    spec = get_model_spec("resnet20")
    model = spec.build([0] + [16] * 2 + [32] * 3 + [64] * 3)
    x = torch.relu(torch.randn(1, 16, 8, 8))
    assert torch.equal(model.layer1[0](x), x)
    assert not list(model.layer1[0].parameters())


@pytest.mark.parametrize("factory", list(USER_BLOCKS))
def test_ort_int8_export_of_a_pruned_user_model_passes_its_checks(factory, tmp_path):
    spec = user(factory)
    teacher = spec.make()
    widths = _half(spec)
    student = spec.build(widths)
    names = [b.name for b in spec.blocks()]
    policy = Policy.from_lists(spec.name, "tiny-cpu", names, widths, ["int8"] * len(names))
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((1, *SHAPE)).astype(np.float32) for _ in range(8)]
    manifest = write_artifact(student, teacher, spec, policy, (1, *SHAPE), batches, batches, tmp_path, {}, {})
    kept = [b.name for b, w in zip(spec.blocks(), widths) if w > 0]
    assert all(manifest.quantized_blocks[name] for name in kept)  # every kept block runs quantized kernels
    assert manifest.model_ref.input_shape == SHAPE and manifest.model_ref.args == {}
    assert (tmp_path / MODEL_NAME).is_file()


def test_an_untraceable_model_is_one_error_naming_module_and_construct():
    with pytest.raises(UntraceableModel, match=r"DataDependent.*control flow"):
        user("untraceable").discovery


def test_an_untraceable_submodule_is_named():
    class Gate(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.gate = Gate()

        def forward(self, x):
            return self.gate(self.conv(x)).mean((2, 3))

    with pytest.raises(UntraceableModel, match="module 'gate'"):
        discover(Net(), (3, 8, 8))


@pytest.mark.parametrize("factory", list(USER_BLOCKS))
def test_tensorrt_bound_onnx_of_a_user_model_places_every_precision(factory, tmp_path):
    spec = user(factory)
    widths = _half(spec)
    model = spec.build(widths)
    precisions = [("int8", "fp16", "fp32")[i % 3] for i in range(len(widths))]
    expected = block_precisions(spec.blocks(), widths, precisions)
    rng = np.random.default_rng(0)
    calibration = [rng.standard_normal((2, *SHAPE)).astype(np.float32) for _ in range(2)]
    write_trt_onnx(model, expected, (2, *SHAPE), calibration, tmp_path / "model.onnx")
    assert placement_problems(onnx.load(str(tmp_path / "model.onnx")), expected) == []
    mixed = reference_outputs(tmp_path / "model.onnx", calibration[:1], basic_only=True)
    assert mixed.shape == (2, 10) and np.isfinite(mixed).all()
    # The same graph with every block FP32 computes what PyTorch does.
    write_trt_onnx(model, dict.fromkeys(expected, "fp32"), (2, *SHAPE), (), tmp_path / "fp32.onnx")
    out = reference_outputs(tmp_path / "fp32.onnx", calibration[:1], basic_only=True)
    with torch.no_grad():
        reference = model(torch.from_numpy(calibration[0])).numpy()
    assert np.abs(out - reference).max() <= 1e-4 * max(1.0, np.abs(reference).max())
