"""Benchmark: does the graph handed to TensorRT keep the model's predictions in each precision? (CPU only)

For the public CIFAR-10 ResNet-20/56 checkpoints: export the TensorRT-bound ONNX with every block in one
precision (and a mixed INT8/FP16/FP32 pattern), run it with ONNX Runtime on CPU, and compare with PyTorch on
held-out *train-split* images (never the test split): max abs logit error, top-1 agreement, top-1 against the
labels. FP8 is also run with ONNX Runtime's full CPU optimisations, which mis-handle FLOAT8 Q/DQ (the reason
every CPU check of these graphs uses basic optimisations). No latency here: that needs TensorRT on a GPU.
Writes a Markdown table and a JSON file (default: tools/results/trt_graph.{md,json}).

    python tools/bench_trt_graph.py
    python tools/bench_trt_graph.py --models resnet20 --images 256
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console

from hirelc_deploy.artifacts.artifact import deviation, torch_outputs
from hirelc_deploy.artifacts.trt_onnx import block_precisions, write_trt_onnx
from hirelc_deploy.models import get_model_spec
from hirelc_deploy.pipeline import DataConfig, load_model, prepare_data, static_batches
from hirelc_deploy.runs import atomic_write_json, atomic_write_text
from hirelc_deploy.runtime.onnxruntime import reference_outputs
from hirelc_deploy.settings import REPO_ROOT, shared_dir


def _patterns(n: int) -> dict[str, list[str]]:
    return {**{p: [p] * n for p in ("fp32", "fp16", "int8", "fp8")},
            "mixed int8/fp16/fp32": [("int8", "fp16", "fp32")[i % 3] for i in range(n)]}


def bench_model(name: str, images: int, batch: int) -> dict:
    """Deviation from PyTorch of each precision pattern of one checkpoint."""
    spec = get_model_spec(name)
    model = load_model(spec, next((shared_dir() / "models" / "cifar10-resnet").glob(f"{name}-*.th")))
    data = prepare_data(spec, shared_dir() / "datasets" / "cifar10",
                        DataConfig(train_images=256, heldout_images=images))
    calibration = static_batches(data.train, data, batch, 256)
    check = static_batches(data.heldout, data, batch, images)
    labels = np.concatenate([y.numpy() for _, y in data.heldout.batches(batch, data.normalize, data.size,
                                                                         drop_last=True)])[: images]
    reference = torch_outputs(model, check)
    blocks = spec.blocks()
    full_widths = [b.full_width for b in blocks]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, precisions in _patterns(len(blocks)).items():
            path = Path(tmp) / "m.onnx"
            start = time.perf_counter()
            expected = block_precisions(blocks, full_widths, precisions)
            write_trt_onnx(model, expected, (batch, *spec.input_shape), calibration, path)
            export_s = time.perf_counter() - start
            final = reference_outputs(path, check, basic_only=True)
            row = {"pattern": label, "export_s": export_s, **deviation(final, reference),
                   "top1": float(np.mean(final.argmax(1) == labels)), "ort_optimisation": "basic"}
            rows.append(row)
            if label == "fp8":
                full = reference_outputs(path, check)  # ONNX Runtime's default: every CPU optimisation
                rows.append({**row, **deviation(full, reference), "top1": float(np.mean(full.argmax(1) == labels)),
                             "ort_optimisation": "all (default)"})
    return {"model": name, "torch_top1": float(np.mean(reference.argmax(1) == labels)), "rows": rows}


def _markdown(results: list[dict]) -> str:
    lines = []
    for res in results:
        lines += [f"## {res['model']} (PyTorch top-1 {100 * res['torch_top1']:.2f}% on these held-out images)", "",
                  "| precisions | ORT optimisation | max abs logit error | top-1 agreement with PyTorch | top-1 |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['pattern']} | {r['ort_optimisation']} | {r['final_max_abs_error']:.4f} | "
                  f"{r['final_top1_agreement_with_torch']:.4f} | {100 * r['top1']:.2f}% |" for r in res["rows"]]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet20", "resnet56"])
    parser.add_argument("--images", type=int, default=1024, help="held-out train-split images compared")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "tools" / "results" / "trt_graph")
    args = parser.parse_args()
    results = [bench_model(name, args.images, args.batch) for name in args.models]
    report = _markdown(results)
    Console().print(report)
    atomic_write_json(args.out.with_suffix(".json"), {"images": args.images, "batch": args.batch,
                                                       "results": results})
    atomic_write_text(args.out.with_suffix(".md"), report)
    Console().print(f"written {args.out.with_suffix('.json')} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
