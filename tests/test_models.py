import pytest
import torch

from hirelc_deploy.errors import CheckpointError, InputError
from hirelc_deploy.models import MODELS, get_model_spec, load_weights

from .conftest import inner_widths


def test_cifar_resnet_blocks_and_widths():
    spec = get_model_spec("resnet56")
    blocks = spec.blocks()
    assert len(blocks) == 27
    assert [b.full_width for b in blocks] == [16] * 9 + [32] * 9 + [64] * 9
    assert blocks[9].name == "layer2.0" and blocks[9].in_channels == 16 and blocks[9].out_channels == 32
    assert blocks[3].onnx_prefix == "/layer1/layer1.3/"


def test_width_configuration_changes_only_inner_channels():
    spec = get_model_spec("resnet20")
    widths = [4, 8, 12, 8, 16, 24, 16, 32, 48]
    model = spec.build(widths)
    assert inner_widths(model, spec.blocks()) == widths
    assert model.layer2[0].conv1.out_channels == 8 and model.layer2[0].conv2.out_channels == 32
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_pruned_model_has_fewer_parameters():
    spec = get_model_spec("resnet20")
    full = sum(p.numel() for p in spec.build().parameters())
    half = sum(p.numel() for p in spec.build([8] * 3 + [16] * 3 + [32] * 3).parameters())
    assert half < 0.6 * full


def test_invalid_width_configuration():
    spec = get_model_spec("resnet20")
    with pytest.raises(ValueError, match="9 blocks"):
        spec.build([8] * 3)
    with pytest.raises(ValueError, match="outside"):
        spec.build([17] + [16] * 8)


@pytest.mark.parametrize("name,params", [("resnet18", 11_689_512), ("resnet50", 25_557_032),
                                         ("mobilenet_v2", 3_504_872)])
def test_imagenet_models_match_torchvision_parameter_counts(name, params):
    # torchvision's published parameter counts: equal counts with torchvision layer names means its
    # state dicts load into these definitions.
    assert sum(p.numel() for p in get_model_spec(name).build().parameters()) == params


def test_imagenet_resnet_layer_names_are_torchvision_style():
    keys = set(get_model_spec("resnet50").build().state_dict())
    assert {"conv1.weight", "layer1.0.downsample.0.weight", "layer4.2.conv3.weight", "fc.bias"} <= keys


def test_mobilenet_v2_first_block_is_not_prunable():
    blocks = get_model_spec("mobilenet_v2").blocks()
    assert len(blocks) == 17 and not blocks[0].prunable and all(b.prunable for b in blocks[1:])
    assert blocks[1].full_width == 96 and blocks[-1].full_width == 960
    with pytest.raises(ValueError, match="tied"):
        get_model_spec("mobilenet_v2").build([16] + [b.full_width for b in blocks[1:]])


def test_mobilenet_v2_runs_pruned():
    spec = get_model_spec("mobilenet_v2")
    widths = [b.full_width if not b.prunable else b.full_width // 2 for b in spec.blocks()]
    assert spec.build(widths, num_classes=7)(torch.randn(1, 3, 64, 64)).shape == (1, 7)


def test_unknown_model_names_flag():
    with pytest.raises(InputError, match="--model"):
        get_model_spec("vgg16")
    assert "resnet56" in MODELS


def test_checkpoint_round_trip_with_module_prefix(tmp_path):
    src = get_model_spec("resnet20").build()
    path = tmp_path / "ck.th"
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}, "best_prec1": 90.0}, path)
    dst = load_weights(get_model_spec("resnet20").build(), path)
    x = torch.randn(1, 3, 32, 32)
    assert torch.allclose(src(x), dst(x))


def test_checkpoint_for_another_architecture(tmp_path):
    path = tmp_path / "r20.th"
    torch.save(get_model_spec("resnet20").build().state_dict(), path)
    with pytest.raises(CheckpointError, match="r20.th.*does not fit"):
        load_weights(get_model_spec("resnet32").build(), path)


def test_truncated_checkpoint(tmp_path):
    path = tmp_path / "cut.th"
    torch.save(get_model_spec("resnet20").build().state_dict(), path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="cut.th"):
        load_weights(get_model_spec("resnet20").build(), path)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_pickle_that_executes_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.th"
    torch.save({"state_dict": _Evil(str(marker))}, path)
    with pytest.raises(CheckpointError, match="evil.th.*refused"):
        load_weights(get_model_spec("resnet20").build(), path)
    assert not marker.exists()


def test_public_checkpoint_loads(shared):
    model = load_weights(get_model_spec("resnet56").build(), shared / "models/cifar10-resnet/resnet56-4bfd9763.th")
    assert model.linear.weight.shape == (10, 64)
