"""The graph handed to TensorRT, checked on CPU: validity, closeness to PyTorch, Q/DQ and FP16 placement, 2:4."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, numpy_helper

from hirelc_deploy.apply.sparsity import make_permanent, sparsify, two_four_mask
from hirelc_deploy.cli import main
from hirelc_deploy.artifacts.qdq_check import placement_problems
from hirelc_deploy.artifacts.trt_onnx import block_precisions, write_trt_onnx
from hirelc_deploy.models import get_model_spec
from hirelc_deploy.runtime.onnxruntime import reference_outputs

from .test_bad_input import fails

SHAPE = (2, 3, 32, 32)


def _calibration(shape=SHAPE, batches=2):
    rng = np.random.default_rng(0)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(batches)]


def _resnet20():
    model = get_model_spec("resnet20").build().eval()
    # Fresh BatchNorm statistics make every block an identity-like scale; give them spread so blocks differ.
    gen = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.weight.data = torch.rand(module.num_features, generator=gen) + 0.5
            module.bias.data = torch.randn(module.num_features, generator=gen) * 0.1
    return model


def _export(model, precisions, path, shape=SHAPE, model_name="resnet20"):
    """Export a full-width ``model_name`` model with its blocks in ``precisions``; (graph, expected map)."""
    blocks = get_model_spec(model_name).blocks()
    expected = block_precisions(blocks, [b.full_width for b in blocks], precisions)
    assert write_trt_onnx(model, expected, shape, _calibration(shape), path) == expected
    return onnx.load(str(path)), expected


def _torch(model, batches):
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(b)).numpy() for b in batches])


@pytest.mark.parametrize("precision, tolerance", [("fp32", 1e-5), ("fp16", 5e-3), ("int8", 5e-2), ("fp8", 8e-2)])
def test_graph_validates_and_runs_close_to_torch(tmp_path, precision, tolerance):
    model = _resnet20()
    proto, _ = _export(model, [precision] * 9, tmp_path / "m.onnx")
    onnx.checker.check_model(proto, full_check=True)
    batches = _calibration()
    reference = _torch(model, batches)
    error = np.abs(reference_outputs(tmp_path / "m.onnx", batches, basic_only=True) - reference).max()
    assert error <= tolerance * np.abs(reference).max(), error


def _producer(graph):
    return {out: node for node in graph.node for out in node.output}


def _initializers(graph):
    return {i.name: i for i in graph.initializer}


def test_int8_blocks_follow_tensorrt_placement_and_fp32_blocks_have_no_qdq(tmp_path):
    precisions = ["fp32", "int8", "int8", "fp32", "int8", "fp32", "fp32", "fp32", "int8"]
    proto, _ = _export(_resnet20(), precisions, tmp_path / "m.onnx")
    graph = proto.graph
    producer, inits = _producer(graph), _initializers(graph)
    blocks = get_model_spec("resnet20").blocks()
    for block, precision in zip(blocks, precisions):
        nodes = [n for n in graph.node if n.name.startswith(block.onnx_prefix)]
        convs = [n for n in nodes if n.op_type == "Conv"]
        if precision == "fp32":
            assert not [n for n in nodes if n.op_type in ("QuantizeLinear", "DequantizeLinear")], block.name
            continue
        for conv in convs:
            act, weight = producer[conv.input[0]], producer[conv.input[1]]
            # Activation: Q -> DQ, per tensor, zero point an INT8 zero (symmetric).
            assert act.op_type == "DequantizeLinear" and producer[act.input[0]].op_type == "QuantizeLinear"
            zero = inits[act.input[2]]
            assert zero.data_type == TensorProto.INT8 and not numpy_helper.to_array(zero).any()
            assert numpy_helper.to_array(inits[act.input[1]]).size == 1
            # Weights: stored INT8, one scale per output channel, axis 0.
            stored, scale = inits[weight.input[0]], numpy_helper.to_array(inits[weight.input[1]])
            assert weight.op_type == "DequantizeLinear" and stored.data_type == TensorProto.INT8
            assert scale.shape == (stored.dims[0],) and {a.name: a.i for a in weight.attribute}["axis"] == 0
        # Convolution outputs are never quantized (conv + ReLU + Add fuse).
        for node in graph.node:
            if node.op_type == "QuantizeLinear" and node.input[0] in producer:
                assert producer[node.input[0]].op_type != "Conv", node.name
        add = next(n for n in nodes if n.op_type == "Add")
        sources = [producer[name] for name in add.input]
        assert sorted(s.op_type for s in sources) == ["Conv", "DequantizeLinear"], block.name
        assert next(s for s in sources if s.op_type == "Conv").name.startswith(block.onnx_prefix + "conv2/")


def test_projection_shortcut_conv_output_is_the_quantized_add_input(tmp_path):
    spec = get_model_spec("resnet50")
    model = spec.build().eval()
    blocks = spec.blocks()
    shape = (1, *spec.input_shape)
    proto, _ = _export(model, ["int8"] * len(blocks), tmp_path / "m.onnx", shape, "resnet50")
    graph = proto.graph
    producer = _producer(graph)
    first = blocks[0].onnx_prefix  # layer1.0 has a downsample (projection) convolution
    add = next(n for n in graph.node if n.op_type == "Add" and n.name.startswith(first))
    by_kind = {producer[name].op_type: producer[name] for name in add.input}
    assert set(by_kind) == {"Conv", "DequantizeLinear"}
    quantized = producer[producer[by_kind["DequantizeLinear"].input[0]].input[0]]
    assert quantized.op_type == "Conv" and "downsample" in quantized.name
    assert "downsample" not in by_kind["Conv"].name
    assert placement_problems(proto, {b.onnx_prefix: "int8" for b in blocks}) == []


def test_fp16_blocks_compute_in_fp16_with_one_cast_at_each_precision_change(tmp_path):
    precisions = ["fp32", "fp16", "fp16", "fp32", "int8", "fp16", "fp32", "fp32", "fp32"]
    proto, _ = _export(_resnet20(), precisions, tmp_path / "m.onnx")
    graph = proto.graph
    inits = _initializers(graph)
    blocks = get_model_spec("resnet20").blocks()
    for block, precision in zip(blocks, precisions):
        convs = [n for n in graph.node if n.op_type == "Conv" and n.name.startswith(block.onnx_prefix)]
        want = TensorProto.FLOAT16 if precision == "fp16" else TensorProto.FLOAT
        for conv in convs:
            if conv.input[1] in inits:
                assert inits[conv.input[1]].data_type == want, conv.name
    casts = [n for n in graph.node if n.op_type == "Cast"]
    to_half = [c for c in casts if c.attribute[0].i == TensorProto.FLOAT16]
    to_float = [c for c in casts if c.attribute[0].i == TensorProto.FLOAT]
    # Two FP16 runs (blocks 1-2 and block 5): each entered once and left once; adjacent FP16 blocks share tensors.
    assert len(to_half) == 2 and len(to_float) == 2
    assert {c.name.split("/")[2] for c in to_half} == {"layer1.1", "layer2.2"}


def test_placement_check_names_what_breaks_the_rules(tmp_path):
    precisions = ["int8"] * 3 + ["fp16"] * 3 + ["fp32"] * 3
    proto, expected = _export(_resnet20(), precisions, tmp_path / "m.onnx")
    graph = proto.graph
    assert placement_problems(proto, expected) == []
    producer = _producer(graph)
    add = next(n for n in graph.node if n.op_type == "Add" and n.name.startswith("/layer1/layer1.1/"))
    k = next(i for i, name in enumerate(add.input) if producer[name].op_type == "DequantizeLinear")
    add.input[k] = producer[producer[add.input[k]].input[0]].input[0]  # the shortcut, unquantized
    problems = placement_problems(proto, expected)
    assert len(problems) == 1 and problems[0].startswith("/layer1/layer1.1/Add")
    # The same graph read as if a FP32 block were meant to be INT8: its convolutions are reported.
    problems = placement_problems(proto, {**expected, "/layer3/layer3.0/": "int8"})
    assert any(p.startswith("/layer3/layer3.0/conv1/Conv: activation input not quantized") for p in problems)
    assert any("/layer2/layer2.0/conv1/Conv" in p for p in placement_problems(proto, {"/layer2/layer2.0/": "fp32"}))


def _holds_2_4(weight: np.ndarray) -> bool:
    k, c, r, s = weight.shape
    for o in range(k):
        for y in range(r):
            for x in range(s):
                for g in range(0, c, 4):
                    if np.count_nonzero(weight[o, g:g + 4, y, x]) > 2:
                        return False
    return True


def test_two_four_mask_keeps_the_two_largest_of_every_four_input_channels():
    weight = torch.randn(6, 8, 3, 3)
    mask = two_four_mask(weight)
    for o in range(6):
        for y in range(3):
            for x in range(3):
                for g in range(0, 8, 4):
                    group = weight[o, g:g + 4, y, x].abs()
                    kept = mask[o, g:g + 4, y, x]
                    assert kept.sum() == 2
                    assert group[kept].min() >= group[~kept].max()


def test_sparsified_blocks_keep_the_pattern_through_quantized_export(tmp_path):
    model = _resnet20()
    masked = sparsify(model, ["layer1.1", "layer3.0"])
    assert masked == ["layer1.1.conv1", "layer1.1.conv2", "layer3.0.conv1", "layer3.0.conv2"]
    make_permanent(model)
    assert _holds_2_4(model.layer1[1].conv1.weight.detach().numpy())
    assert not _holds_2_4(model.layer1[0].conv1.weight.detach().numpy())
    proto, _ = _export(model, ["int8"] * 9, tmp_path / "m.onnx")
    graph = proto.graph
    producer, inits = _producer(graph), _initializers(graph)
    for conv in (n for n in graph.node if n.op_type == "Conv"):
        stored = numpy_helper.to_array(inits[producer[conv.input[1]].input[0]]) if conv.input[1] in producer \
            else numpy_helper.to_array(inits[conv.input[1]])
        sparse = conv.name.startswith(("/layer1/layer1.1/", "/layer3/layer3.0/"))
        assert _holds_2_4(stored) == sparse, conv.name


def test_sparsity_on_a_target_without_it_is_refused(monkeypatch, capsys, tmp_path):
    policy = tmp_path / "p.json"
    table = Path(__file__).resolve().parents[1] / "latency_tables" / "resnet20__cpu-ort-1t.json"
    monkeypatch.setattr(sys, "argv", ["hirelc", "plan", "--table", str(table), "--out", str(policy)])
    main()
    error = fails(monkeypatch, capsys, "export", "--model", "resnet20", "--weights", str(tmp_path / "w.th"),
                  "--data", str(tmp_path), "--target", "cpu-ort-1t", "--policy", str(policy), "--out",
                  str(tmp_path / "out"), "--sparse-2-4", "all")
    assert "--sparse-2-4" in error and "cpu-ort-1t" in error and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_compress_on_a_tensorrt_target_without_a_gpu_is_labelled_predicted(monkeypatch, capsys, tmp_path,
                                                                          tiny_cifar):
    spec = get_model_spec("resnet20")
    weights = tmp_path / "r20.th"
    torch.save({"state_dict": spec.build().state_dict()}, weights)
    monkeypatch.setenv("HIRELC_TABLES", str(tmp_path / "tables"))
    run = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", [
        "hirelc", "-q", "compress", "--model", "resnet20", "--weights", str(weights), "--data", str(tiny_cifar),
        "--target", "trt-h100-b1", "--latency-budget", "0.6x", "--evals", "4", "--finetune-epochs", "0.2",
        "--finetune-images", "200", "--heldout-images", "40", "--run-dir", str(run), "--json"])
    main()
    summary = json.loads(capsys.readouterr().out)
    assert summary["latency_kind"] == "predicted" and summary["measured_ms"] is None
    assert summary["verdict"].startswith("PREDICTED to") and "not measured" in summary["verdict"]
    assert summary["predicted_ms"] <= summary["budget_ms"] == pytest.approx(0.6 * summary["predicted_uncompressed_ms"])
    table = json.loads((run / "latency_table.json").read_text())
    assert table["kind"] == "predicted" and not (tmp_path / "tables").exists()
    manifest = json.loads((run / "artifacts" / "manifest.json").read_text())
    assert manifest["backend"] == "tensorrt" and manifest["engine"]["built"] is False
    policy = json.loads((run / "policy.json").read_text())
    kept = {b["name"]: b["precision"] for b in policy["blocks"] if b["width"] > 0}
    assert manifest["checks"]["block_precisions"] == kept
    assert "PREDICTED" in Path(run / "report.html").read_text(encoding="utf-8")


@pytest.mark.shared
def test_trained_resnet20_keeps_its_predictions_in_every_precision(tmp_path, shared):
    from hirelc_deploy.pipeline import DataConfig, load_model, prepare_data, static_batches

    spec = get_model_spec("resnet20")
    model = load_model(spec, shared / "models" / "cifar10-resnet" / "resnet20-12fca82f.th")
    data = prepare_data(spec, shared / "datasets" / "cifar10", DataConfig(train_images=128, heldout_images=256))
    calibration = static_batches(data.train, data, 64, 128)
    check = static_batches(data.heldout, data, 64, 256)
    reference = _torch(model, check).argmax(1)
    blocks = spec.blocks()
    for precision in ("fp16", "int8", "fp8"):
        expected = block_precisions(blocks, [b.full_width for b in blocks], [precision] * 9)
        write_trt_onnx(model, expected, (64, 3, 32, 32), calibration, tmp_path / f"{precision}.onnx")
        outputs = reference_outputs(tmp_path / f"{precision}.onnx", check, basic_only=True)
        agreement = np.mean(outputs.argmax(1) == reference)
        assert agreement >= (0.99 if precision == "fp16" else 0.95), (precision, agreement)


def test_bench_of_tensorrt_engines_says_what_it_needs(monkeypatch, capsys, tmp_path):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"not built here")
    error = fails(monkeypatch, capsys, "bench", str(tmp_path / "model.onnx"), "--target", "trt-h100-b1")
    assert "model.onnx: expected a TensorRT .engine file" in error
    error = fails(monkeypatch, capsys, "bench", str(engine), "--target", "trt-h100-b1")
    assert "needs the tensorrt package" in error and "NVIDIA GPU" in error
