import math

import torch

from hirelc_deploy.models import get_model_spec
from hirelc_deploy.sensitivity import Sensitivity, compute_sensitivity, empirical_fisher


def _batches():
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(8, 3, 32, 32, generator=g), torch.randint(0, 10, (8,), generator=g))]


def test_fisher_is_mean_squared_per_sample_gradient():
    model = get_model_spec("resnet20").build()
    (x, y), = _batches()
    fisher, seen = empirical_fisher(model, [(x[:2], y[:2])], max_samples=2)
    grads = []
    for i in range(2):
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x[i:i + 1]), y[i:i + 1]).backward()
        grads.append(model.linear.weight.grad.clone())
    expected = (grads[0] ** 2 + grads[1] ** 2) / 2
    assert seen == 2 and torch.allclose(fisher["linear.weight"], expected, rtol=1e-4, atol=1e-10)


def test_sensitivity_per_block_and_channel(tmp_path):
    spec = get_model_spec("resnet20")
    model = spec.build()
    sens = compute_sensitivity(model, spec.blocks(), spec.input_shape, "resnet20", _batches(), max_samples=6)
    assert sens.samples == 6 and len(sens.blocks) == 9
    assert max(b.relative for b in sens.blocks) == 1.0
    for block, full in zip(sens.blocks, [16] * 3 + [32] * 3 + [64] * 3):
        assert math.isfinite(block.fisher_per_param) and block.fisher_per_param > 0
        assert block.fisher_per_param == block.fisher_trace / block.params
        assert len(block.channel_fisher[0]) == full and len(block.channel_l1[0]) == full
    assert Sensitivity.load(sens.save(tmp_path / "s.json")) == sens


def test_sensitivity_is_deterministic_for_a_seed():
    def run(seed):
        torch.manual_seed(seed)
        spec = get_model_spec("resnet20")
        return compute_sensitivity(spec.build(), spec.blocks(), spec.input_shape, "r", _batches(), 4)

    assert run(0) == run(0)
    assert run(0) != run(1)
