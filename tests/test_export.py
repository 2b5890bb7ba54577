import numpy as np
import onnx
import onnxruntime as ort
import torch

from hirelc_deploy.artifacts import export_onnx, quantize_blocks
from hirelc_deploy.models import get_model_spec
from hirelc_deploy.models.naming import HEAD, STEM, BlockMapper


def _optimized(path, tmp_path):
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "opt.onnx")
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session, onnx.load(options.optimized_model_filepath)


def test_fp32_export_matches_torch_and_keeps_block_names(tmp_path):
    spec = get_model_spec("resnet20")
    model = spec.build([8, 12, 16, 16, 24, 32, 32, 48, 64])
    path = export_onnx(model, (2, 3, 32, 32), tmp_path / "m.onnx")
    x = torch.randn(2, 3, 32, 32)
    session, _ = _optimized(path, tmp_path)
    out = session.run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(out, model(x).detach().numpy(), rtol=1e-4, atol=1e-4)
    names = [n.name for n in onnx.load(str(path)).graph.node]
    assert any(n.startswith("/layer2/layer2.0/conv1/") for n in names)


def test_per_block_int8_runs_quantized_kernels_only_where_asked(tmp_path):
    spec = get_model_spec("resnet20")
    model = spec.build()
    blocks = spec.blocks()
    fp32 = export_onnx(model, (1, 3, 32, 32), tmp_path / "fp32.onnx")
    rng = np.random.default_rng(0)
    calib = [rng.standard_normal((1, 3, 32, 32), dtype=np.float32) for _ in range(4)]
    int8_blocks = [blocks[1], blocks[4]]
    q = quantize_blocks(fp32, tmp_path / "int8.onnx", [b.onnx_prefix for b in int8_blocks], calib)
    session, optimized = _optimized(q, tmp_path)
    owners = BlockMapper(b.onnx_prefix for b in blocks).graph_owners(optimized)
    quantized_owners = {owners[n.name] for n in optimized.graph.node if n.op_type == "QLinearConv"}
    assert quantized_owners == {b.onnx_prefix for b in int8_blocks}
    # FP32 blocks keep float convolutions and get no DequantizeLinear of shared constants.
    fp32_block = blocks[2].onnx_prefix
    assert any(n.op_type in ("Conv", "FusedConv") and owners[n.name] == fp32_block for n in optimized.graph.node)
    x = calib[0]
    ref = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    out = session.run(None, {"input": x})[0]
    assert np.abs(out - ref).max() < 0.1 * np.abs(ref).max()


def test_graph_owners_give_optimizer_nodes_a_neighbours_block():
    g = onnx.helper
    nodes = [
        g.make_node("Relu", ["x"], ["a"], name="/relu/Relu"),  # stem
        g.make_node("Transpose", ["a"], ["b"], name="Transpose_token_1"),  # made by the optimiser
        g.make_node("Relu", ["b"], ["c"], name="/layer1/layer1.0/conv1/Conv"),
        g.make_node("Relu", ["c"], ["d"], name="/layer1/layer1.10/conv1/Conv"),
        g.make_node("Relu", ["d"], ["y"], name="/linear/Gemm"),
    ]
    vi = g.make_tensor_value_info
    graph = g.make_graph(nodes, "t", [vi("x", onnx.TensorProto.FLOAT, [1])], [vi("y", onnx.TensorProto.FLOAT, [1])])
    mapper = BlockMapper(["/layer1/layer1.0/", "/layer1/layer1.1/", "/layer1/layer1.10/"])
    owners = mapper.graph_owners(g.make_model(graph))
    assert owners == {
        "/relu/Relu": STEM,
        "Transpose_token_1": "/layer1/layer1.0/",
        "/layer1/layer1.0/conv1/Conv": "/layer1/layer1.0/",
        "/layer1/layer1.10/conv1/Conv": "/layer1/layer1.10/",
        "/linear/Gemm": HEAD,
    }


def test_int8_residual_streams_run_in_the_convolutions_layout(tmp_path):
    # Without the NHWC entry every residual add of an INT8 run sat between two layout Transposes (18 in an
    # all-INT8 ResNet-20); with it, each INT8 run of blocks is entered and left once.
    spec = get_model_spec("resnet20")
    blocks = spec.blocks()
    fp32 = export_onnx(spec.build(), (1, 3, 32, 32), tmp_path / "fp32.onnx")
    rng = np.random.default_rng(0)
    calib = [rng.standard_normal((1, 3, 32, 32), dtype=np.float32) for _ in range(4)]
    ref = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).run(None, {"input": calib[0]})[0]
    for runs in ([range(9)], [range(0, 3), range(4, 9)]):
        int8 = [blocks[i].onnx_prefix for run in runs for i in run]
        q = quantize_blocks(fp32, tmp_path / f"int8_{len(runs)}.onnx", int8, calib)
        session, optimized = _optimized(q, tmp_path)
        ops = [n.op_type for n in optimized.graph.node]
        assert ops.count("QLinearConv") == 2 * len(int8) + len(runs)  # the blocks' and one entry per run
        # An FP32 block between two runs reads the first run's NHWC output twice (its convolution and its
        # option-A shortcut): one Transpose more.
        assert ops.count("Transpose") == 2 * len(runs) + (len(runs) - 1)
        out = session.run(None, {"input": calib[0]})[0]
        assert np.abs(out - ref).max() < 0.1 * np.abs(ref).max()
