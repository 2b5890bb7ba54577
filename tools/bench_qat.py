"""The INT8 gap before and after quantization-aware distillation, on one fixed policy.

ResNet-20 (the public CIFAR-10 checkpoint in ../shared, or $HIRELC_SHARED) with a fixed policy: every block but
the first in INT8 and half the inner width in four of them. The same short fine-tune (seeded) runs twice, without
and with fake quantization of the INT8 blocks (``apply/fake_quant.py``); both students are exported to ONNX Runtime
INT8 as ``hirelc export`` does (ranges recalibrated by ONNX Runtime). The QAT student is also exported a third way,
with the activation ranges its observers learned written into the graph (``TensorQuantOverrides``) instead of
recalibrated, to choose between the two. Prints top-1 of the FP32 student and of the INT8 engine on test images
for each, and writes ``tools/results/bench_qat.json``.

    python tools/bench_qat.py                                   # 5,000 images, 1 epoch, 1,000 test images
    python tools/bench_qat.py --finetune-images 512 --epochs 0.25 --test-per-class 20   # a smoke run
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from hirelc_deploy.apply import DistillConfig
from hirelc_deploy.apply import fake_quant
from hirelc_deploy.artifacts.onnx_export import export_onnx
from hirelc_deploy.artifacts.ort_int8 import _ArrayReader, enter_nhwc, unshare_initializers
from hirelc_deploy.models import get_model_spec
from hirelc_deploy.models.naming import BlockMapper, onnx_scope
from hirelc_deploy.pipeline import DataConfig, export_policy, load_model, open_test_images, prepare_data, static_batches
from hirelc_deploy.policy import Policy
from hirelc_deploy.records import DataOptions
from hirelc_deploy.runs import atomic_write_json
from hirelc_deploy.runtime.onnxruntime import top1_accuracy
from hirelc_deploy.settings import REPO_ROOT, shared_dir
from hirelc_deploy.targets import load_target

HALF = (1, 3, 5, 7)  # blocks at half width; every block but the first runs INT8


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--finetune-images", type=int, default=5000)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--test-per-class", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=REPO_ROOT / "tools" / "results" / "bench_qat.json")
    return p.parse_args()


def _learned_ranges_engine(student, spec, policy, ranges: dict, calibration, path: Path) -> Path:
    """``student`` quantized like ``ort_int8.quantize_blocks`` but with the observers' ranges for the tensors
    they watched (each quantized convolution's input, each block's output); ONNX Runtime calibrates the rest."""
    int8 = [b.onnx_prefix for b, c in zip(spec.blocks(), policy.blocks) if c.precision == "int8" and c.width]
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(student, (1, *spec.input_shape), Path(tmp) / "fp32.onnx")
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        model = enter_nhwc(unshare_initializers(onnx.load(str(pre))), int8)
        onnx.save(model, str(pre))
        nodes = list(model.graph.node)
        overrides = {}
        for point, (low, high) in ranges.items():
            module, where = point.split(":")
            scope = onnx_scope(module)
            if where == "input" and any(n.name == f"{scope}Conv" for n in nodes):
                tensor = next(n for n in nodes if n.name == f"{scope}Conv").input[0]
            elif where == "output" and module in [b.name for b in spec.blocks()]:
                tensor = [n for n in nodes if n.name.startswith(scope)][-1].output[0]
            else:
                continue
            overrides[tensor] = [{"rmin": np.float32(min(low, 0.0)), "rmax": np.float32(max(high, 0.0))}]
        quantize_static(str(pre), str(path), _ArrayReader(calibration), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        calibrate_method=CalibrationMethod.MinMax,
                        nodes_to_exclude=BlockMapper(int8).outside(n.name for n in nodes),
                        extra_options={"TensorQuantOverrides": overrides})
    return path


def main() -> int:
    args = _args()
    spec = get_model_spec("resnet20")
    root = shared_dir()
    teacher = load_model(spec, root / "models" / "cifar10-resnet" / "resnet20-12fca82f.th")
    target = load_target("cpu-ort-1t")
    blocks = spec.blocks()
    policy = Policy.from_lists(spec.name, target.name, [b.name for b in blocks],
                               [b.full_width // 2 if i in HALF else b.full_width for i, b in enumerate(blocks)],
                               ["fp32"] + ["int8"] * (len(blocks) - 1))
    config = DataConfig(seed=args.seed, train_images=args.finetune_images)
    data = prepare_data(spec, root / "datasets" / "cifar10", config)
    test = open_test_images(spec.input_shape, root / "datasets" / "cifar10", DataOptions(), args.test_per_class)
    learned: dict = {}
    detach = fake_quant.FakeQuant.detach

    def keep_ranges(self):
        learned.update(self.ranges())
        detach(self)

    fake_quant.FakeQuant.detach = keep_ranges
    rows, out_dir = {}, Path(tempfile.mkdtemp(prefix="bench_qat_"))
    for name, qat in (("plain", False), ("qat", True)):
        torch.manual_seed(args.seed)
        started = time.perf_counter()
        student, manifest = export_policy(teacher, spec, policy, target, data, config,
                                          DistillConfig(epochs=args.epochs, fake_quant=qat), out_dir / name, {})
        with torch.no_grad():
            correct = sum(int((student(x).argmax(1) == y).sum()) for x, y in test.batches(256, data.normalize,
                                                                                          data.size))
        session = ort.InferenceSession(str(out_dir / name / "model.onnx"), providers=["CPUExecutionProvider"])
        rows[name] = {"fp32_top1": correct / len(test), "int8_top1": top1_accuracy(session, test, data.normalize)[0],
                      "seconds": time.perf_counter() - started, "finetune": manifest.finetune}
    calibration = static_batches(data.train, data, target.batch_size, config.calibration_images)
    path = _learned_ranges_engine(student, spec, policy, learned, calibration, out_dir / "learned.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rows["qat, learned ranges"] = {**rows["qat"], "int8_top1": top1_accuracy(session, test, data.normalize)[0],
                                   "ranges_overridden": len(learned)}
    print(f"ResNet-20, {args.epochs:g} epoch(s) over {len(data.train)} train images, {len(test)} test images")
    print(f"{'fine-tune':22s}{'FP32 top-1':>12s}{'INT8 top-1':>12s}{'INT8 gap':>10s}{'seconds':>9s}")
    for name, row in rows.items():
        row["gap"] = row["fp32_top1"] - row["int8_top1"]
        print(f"{name:22s}{100 * row['fp32_top1']:11.2f}%{100 * row['int8_top1']:11.2f}%"
              f"{100 * row['gap']:9.2f}%{row['seconds']:9.0f}")
    atomic_write_json(args.out, {"model": "resnet20", "policy": policy.to_dict(), "epochs": args.epochs,
                                 "train_images": len(data.train), "test_images": len(test), "seed": args.seed,
                                 "rows": {k: {f: v for f, v in r.items() if f != "finetune"} for k, r in rows.items()},
                                 "finetune": rows["qat"]["finetune"]})
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
