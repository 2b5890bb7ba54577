"""Quantization-aware fine-tuning (apply/fake_quant.py): the fake-quantized PyTorch model computes what the
exported ONNX Runtime INT8 graph computes, only for the INT8 blocks, and the plain model comes back afterwards."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch.nn.utils import parametrize

from hirelc_deploy.apply.fake_quant import fake_quantized
from hirelc_deploy.apply.prune import recalibrate_batchnorm
from hirelc_deploy.artifacts.onnx_export import export_onnx
from hirelc_deploy.artifacts.ort_int8 import quantize_blocks
from hirelc_deploy.models import get_model_spec

BATCH = 16
INT8 = (1, 2, 4, 5, 7)  # blocks of ResNet-20 in INT8: consecutive ones, and some after an FP32 block


@pytest.fixture(scope="module")
def resnet20():
    """ResNet-20 (random weights, BatchNorm statistics of the images used) with calibration and test images."""
    torch.manual_seed(0)
    spec = get_model_spec("resnet20")
    model = spec.build().eval()
    images = torch.randn(256, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    recalibrate_batchnorm(model, (images[i:i + 64] for i in range(0, 256, 64)), 256)
    calibration = [images[i:i + BATCH] for i in range(0, 128, BATCH)]
    test = [images[i:i + BATCH] for i in range(128, 256, BATCH)]
    return spec, model.eval(), calibration, test


def _logits(model, batches) -> np.ndarray:
    with torch.no_grad():
        return torch.cat([model(x) for x in batches]).numpy()


@pytest.mark.slow
def test_fake_quantized_model_matches_the_onnx_runtime_int8_engine(resnet20, tmp_path):
    spec, model, calibration, test = resnet20
    blocks = [spec.blocks()[i] for i in INT8]
    fp32 = export_onnx(model, (BATCH, 3, 32, 32), tmp_path / "fp32.onnx")
    quantize_blocks(fp32, tmp_path / "int8.onnx", [b.onnx_prefix for b in blocks], [x.numpy() for x in calibration])
    session = ort.InferenceSession(str(tmp_path / "int8.onnx"), providers=["CPUExecutionProvider"])
    engine = np.concatenate([session.run(None, {"input": x.numpy()})[0] for x in test])
    plain = _logits(model, test)
    with fake_quantized(model, blocks) as fq:
        assert fq.blocks == [b.name for b in blocks] and not fq.skipped
        fq.calibrate(calibration)  # the ranges ONNX Runtime's MinMax calibrator found on the same images
        fq.freeze()
        simulated = _logits(model, test)
    # Tolerance: rounding is a step function, so a float difference of 1e-7 between PyTorch's and ONNX Runtime's
    # convolutions flips the odd value to the next grid step, and a flip spreads to its neighbours block by block;
    # the engine's integer kernels differ from its own float QDQ reference by about 0.2% of the logit scale for the
    # same reason. So: the same class for (nearly) every image, the mean difference well under 2% of the mean
    # logit magnitude, and clearly closer to the engine than the unquantized model is (what QAT is for).
    scale = float(np.abs(engine).mean())
    error = float(np.abs(simulated - engine).mean())
    assert np.mean(simulated.argmax(1) == engine.argmax(1)) >= 0.98
    assert error < 0.02 * scale
    assert error < 0.7 * float(np.abs(plain - engine).mean())
    np.testing.assert_array_equal(_logits(model, test), plain)  # detached: the plain model again


def test_fp32_blocks_are_not_fake_quantized(resnet20):
    spec, model, calibration, test = resnet20
    blocks = spec.blocks()
    int8 = [blocks[i] for i in INT8]
    fp32_names = [b.name for i, b in enumerate(blocks) if i not in INT8]
    plain = _logits(model, test)
    with fake_quantized(model, int8) as fq:
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Conv2d):
                in_int8 = any(name.startswith(b.name + ".") for b in int8)
                assert parametrize.is_parametrized(module, "weight") == in_int8, name
                assert bool(module._forward_pre_hooks) == in_int8, name
        assert not any(point.split(":")[0].startswith(tuple(f"{n}." for n in fp32_names)) or
                       point.split(":")[0] in fp32_names for point in fq.points)
    with fake_quantized(model, []) as fq:  # an all-FP32 policy: nothing attached, the same outputs
        assert not fq.points and not fq.convs and not fq.to_dict()["enabled"]
        np.testing.assert_array_equal(_logits(model, test), plain)


def test_training_with_fake_quant_keeps_plain_parameters(resnet20):
    spec, model, calibration, _ = resnet20
    student = get_model_spec("resnet20").build()
    student.load_state_dict(model.state_dict())
    keys = set(student.state_dict())
    with fake_quantized(student, [spec.blocks()[1]]) as fq:
        student.train()
        optimizer = torch.optim.SGD(student.parameters(), lr=0.01)
        loss = student(calibration[0]).square().mean()
        loss.backward()
        assert student.layer1[1].conv1.parametrizations.weight.original.grad is not None  # straight through
        optimizer.step()
        assert all(o.seen for name, o in fq.points.items() if not name.endswith("conv1:input"))
    assert set(student.state_dict()) == keys
    assert not torch.equal(student.layer1[1].conv1.weight, model.layer1[1].conv1.weight)


def test_a_block_that_cannot_be_wrapped_is_left_unfaked():
    class Twice(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            return self.conv(self.conv(x))  # one convolution run twice: no single quantization of its input

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = Twice()

        def forward(self, x):
            return self.body(x)

    from hirelc_deploy.models.discovery import BlockInfo

    net = Net()
    block = BlockInfo(0, "body", "chain", 3, 3, 3, False, modules=("body",))
    with fake_quantized(net, [block]) as fq:
        assert fq.blocks == [] and fq.skipped and not fq.convs
        assert net(torch.randn(1, 3, 8, 8)).shape == (1, 3, 8, 8)
