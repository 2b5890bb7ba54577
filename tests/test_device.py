"""``--device``: where Fisher, candidate evaluation, BatchNorm recalibration and fine-tuning run. The CUDA tests run
where a GPU is visible and skip, saying so, elsewhere; the CPU tests check the flag's errors."""

from __future__ import annotations

import copy

import pytest
import torch

from hirelc_deploy.apply import DistillConfig, distill
from hirelc_deploy.compute import device_of, resolve_device
from hirelc_deploy.errors import InputError
from hirelc_deploy.models import get_model_spec
from tests.conftest import fails

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none visible here)")
without_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a machine without CUDA")


@pytest.mark.parametrize("text", ["gpu", "cuda:", "cuda:x", "CPU", ""])
def test_device_flag_rejects_what_torch_does_not_name(text):
    with pytest.raises(InputError, match=f"--device {text}: expected auto, cpu, cuda or cuda:N"):
        resolve_device(text)


@without_cuda
def test_auto_is_the_cpu_and_cuda_is_a_one_line_error_without_a_gpu(monkeypatch, capsys, tmp_path):
    assert resolve_device("auto") == torch.device("cpu") and resolve_device("cpu") == torch.device("cpu")
    for text in ("cuda", "cuda:1"):
        with pytest.raises(InputError, match=f"--device {text}: CUDA is not available on this machine"):
            resolve_device(text)
    weights = tmp_path / "w.pt"
    torch.save(get_model_spec("resnet20").build().state_dict(), weights)
    line = fails(monkeypatch, capsys, "sensitivity", "--model", "resnet20", "--weights", str(weights),
                 "--data", str(tmp_path), "--device", "cuda")
    assert "--device cuda: CUDA is not available" in line


@needs_cuda
def test_distillation_runs_on_cuda_in_mixed_precision():
    torch.manual_seed(0)
    teacher = get_model_spec("resnet20").build().cuda().eval()
    student = copy.deepcopy(teacher)
    for p in student.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    images, labels = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))
    batches = [(images[i:i + 16], labels[i:i + 16]) for i in range(0, 64, 16)]
    losses = []
    distill(student, teacher, lambda: iter(batches), 4, DistillConfig(epochs=3, lr=0.05, alpha=1.0),
            on_step=losses.append)
    assert device_of(student).type == "cuda" and all(p.dtype == torch.float32 for p in student.parameters())
    assert losses[-1] < losses[0]


@needs_cuda
def test_candidates_score_the_same_on_cuda_as_on_the_cpu(tiny_problem):
    from hirelc_deploy.search.evaluate import Evaluator

    _, _, evaluator = tiny_problem
    spec = get_model_spec("resnet20")
    widths = [max(b.step, b.full_width // 2) if b.prunable else b.full_width for b in spec.blocks()]
    precisions = ["fp32"] * len(widths)
    cpu, _ = evaluator(widths, precisions)
    gpu = Evaluator(copy.deepcopy(evaluator.teacher).cuda(), evaluator.blocks, evaluator.input_shape,
                    evaluator.data, evaluator.sensitivity)
    result, _ = gpu(widths, precisions)
    assert result.top1 == pytest.approx(cpu.top1, abs=0.05) and result.kl == pytest.approx(cpu.kl, abs=0.05)
