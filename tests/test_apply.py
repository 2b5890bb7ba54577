import copy

import pytest
import torch

from hirelc_deploy.apply import DistillConfig, distill, distillation_loss, prune_to_widths, recalibrate_batchnorm
from hirelc_deploy.models import get_model_spec
from hirelc_deploy.sensitivity import compute_sensitivity

from .conftest import inner_widths


def _batches(n=4, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 3, 32, 32, generator=g), torch.randint(0, 10, (size,), generator=g))
            for _ in range(n)]


def test_pruning_removes_channels_physically_and_model_runs():
    spec = get_model_spec("resnet20")
    model = spec.build()
    before = sum(p.numel() for p in model.parameters())
    widths = [8, 16, 4, 16, 24, 32, 64, 48, 16]
    prune_to_widths(model, spec.blocks(), widths, (1, 3, 32, 32), criterion="l1")
    assert inner_widths(model, spec.blocks()) == widths
    assert model.layer1[0].conv1.weight.shape == (8, 16, 3, 3)
    assert model.layer1[0].bn1.running_mean.shape == (8,)
    assert model.layer1[0].conv2.weight.shape == (16, 8, 3, 3)
    assert sum(p.numel() for p in model.parameters()) < before
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_pruning_keeps_the_most_important_channels():
    spec = get_model_spec("resnet20")
    model = spec.build()
    original = model.layer1[0].conv1.weight.detach().clone()
    sens = compute_sensitivity(model, spec.blocks(), spec.input_shape, "resnet20", _batches(1), max_samples=4)
    scores = torch.arange(16.0)  # channel i has importance i: the top 4 are channels 12..15
    sens.blocks[0].channel_fisher = [scores.tolist()]
    prune_to_widths(model, spec.blocks(), [4] + [16] * 2 + [32] * 3 + [64] * 3, (1, 3, 32, 32), sens, "fisher")
    assert torch.equal(model.layer1[0].conv1.weight, original[12:])


def test_mobilenet_v2_prunes_through_depthwise_convolutions():
    spec = get_model_spec("mobilenet_v2")
    model = spec.build()
    widths = [b.full_width if not b.prunable else b.full_width // 2 for b in spec.blocks()]
    prune_to_widths(model, spec.blocks(), widths, (1, 3, 64, 64), criterion="l1")
    block = model.features[2]
    assert block.conv[1][0].weight.shape[0] == 48 and block.conv[1][0].groups == 48
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


def test_batchnorm_recalibration_changes_statistics():
    model = get_model_spec("resnet20").build()
    bn = model.layer2[0].bn1
    before = bn.running_var.clone()
    recalibrate_batchnorm(model, (x for x, _ in _batches()), max_images=32)
    assert not torch.allclose(before, bn.running_var)
    assert not model.training and bn.momentum == 0.1


def test_distillation_loss_is_cross_entropy_part_when_student_equals_teacher():
    logits = torch.randn(4, 10)
    labels = torch.tensor([0, 1, 2, 3])
    loss = distillation_loss(logits, logits, labels, temperature=4.0, alpha=0.9)
    assert loss.item() == pytest.approx(0.1 * torch.nn.functional.cross_entropy(logits, labels).item(), rel=1e-5)


def test_distillation_moves_the_student_towards_the_teacher():
    spec = get_model_spec("resnet20")
    teacher = spec.build()
    student = copy.deepcopy(teacher)
    prune_to_widths(student, spec.blocks(), [8] * 3 + [16] * 3 + [32] * 3, (1, 3, 32, 32), criterion="l1")
    data = _batches(2, 16)
    x = torch.cat([b[0] for b in data])

    def gap():
        with torch.no_grad():
            return torch.nn.functional.mse_loss(student.eval()(x), teacher.eval()(x)).item()

    before = gap()
    distill(student, teacher, lambda: iter(data), 2, DistillConfig(epochs=5, lr=0.05, alpha=1.0))
    assert gap() < before
    assert not student.training
