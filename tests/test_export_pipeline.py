"""A tiny model goes through apply -> export -> INT8 -> ONNX Runtime, and bench measures it."""

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from hirelc_deploy.apply import DistillConfig
from hirelc_deploy.data import Normalize, load_images, open_dataset
from hirelc_deploy.artifacts import load_manifest
from hirelc_deploy.artifacts.onnx_export import export_onnx
from hirelc_deploy.models import get_model_spec
from hirelc_deploy.pipeline import DataConfig, export_policy, prepare_data, sensitivity_of
from hirelc_deploy.policy import Policy
from hirelc_deploy.targets.backends.onnxruntime import BACKEND

pytestmark = pytest.mark.slow


def test_apply_export_int8_and_manifest(tiny_cifar, tiny_target, tmp_path):
    spec = get_model_spec("resnet20")
    teacher = spec.build()
    config = DataConfig(train_images=120, heldout_images=40, fisher_images=16, bn_images=64,
                        calibration_images=16, batch_size=32)
    data = prepare_data(spec, tiny_cifar, config)
    assert len(data.train) == 120 and len(data.heldout) == 20  # 10% of each class (24 images) held out: 2
    sens = sensitivity_of(teacher, spec, data, config)
    blocks = spec.blocks()
    precisions = ["int8" if i in (1, 4, 7) else "fp32" for i in range(len(blocks))]
    policy = Policy.from_lists("resnet20", tiny_target.name, [b.name for b in blocks],
                               [b.full_width // 2 for b in blocks], precisions, predicted_latency_ms=1.0)
    out = tmp_path / "artifact"
    student, manifest = export_policy(teacher, spec, policy, tiny_target, data, config,
                                      DistillConfig(epochs=0.5), out, {"cpu_model": "x"}, sens, "fisher")
    assert student.layer1[0].conv1.out_channels == 8
    assert load_manifest(out) == manifest and manifest.verify(out) == []
    assert {name for name, kernels in manifest.quantized_blocks.items() if kernels} == \
        {blocks[i].name for i in (1, 4, 7)}
    assert manifest.predicted_latency_ms == 1.0 and manifest.latency_kind == "measured"
    # the INT8 engine stays close to the fine-tuned PyTorch student
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    x = next(data.heldout_batches(1))[0]
    with torch.no_grad():
        ref = student(x).numpy()
    got = session.run(None, {"input": x.numpy()})[0]
    assert np.abs(got - ref).max() < 0.2 * np.abs(ref).max()
    assert manifest.checks["fp32_max_abs_error"] <= 1e-3 * manifest.checks["logit_scale"]
    (out / "model.onnx").write_bytes((out / "model.onnx").read_bytes()[:-10])
    assert manifest.verify(out) == ["model.onnx: checksum mismatch"]


class _ColourClassifier(torch.nn.Module):
    """Predicts the class whose index is 3 * (brightest channel): a model whose accuracy we can work out."""

    def __init__(self):
        super().__init__()
        weight = torch.zeros(10, 3)
        weight[[0, 3, 6], [0, 1, 2]] = 1.0
        self.register_buffer("weight", weight)

    def forward(self, x):
        return x.mean(dim=(2, 3)) @ self.weight.T


def test_bench_computes_the_engines_top1(tmp_path, tiny_target):
    from PIL import Image

    colours = {0: (200, 0, 0), 3: (0, 200, 0), 6: (0, 0, 200)}
    root = tmp_path / "d" / "test"
    for c in range(10):
        (root / f"c{c}").mkdir(parents=True)
    # 3 correctly predictable images per class 0/3/6, plus 2 images in class 1 that look like class 0 and one
    # black image (all logits tie: argmax says class 0) in each other class: 9 of 17
    for c, rgb in colours.items():
        for i in range(3):
            Image.new("RGB", (32, 32), rgb).save(root / f"c{c}" / f"{i}.png")
    for i in range(2):
        Image.new("RGB", (32, 32), colours[0]).save(root / "c1" / f"{i}.png")
    for c in (2, 4, 5, 7, 8, 9):
        Image.new("RGB", (32, 32)).save(root / f"c{c}" / "black.png")
    model_path = export_onnx(_ColourClassifier(), (1, 3, 32, 32), tmp_path / "m.onnx")
    images = load_images(open_dataset(tmp_path / "d", "test"))
    result = BACKEND.bench_files(model_path, tiny_target, model_path, images, Normalize((0, 0, 0), (1, 1, 1)))
    assert result.top1 == pytest.approx(9 / 17) and result.top1_images == 17
    assert result.latency_ms["median_ms"] > 0 and result.speedup == pytest.approx(1.0, rel=0.5)
    assert result.file_bytes == model_path.stat().st_size
    json.loads(json.dumps(result.__dict__))
