"""TensorRT engines: the CPU-side logic on synthetic engine-inspector reports, and (with TensorRT and an NVIDIA
GPU) real ResNet-20 engines built, checked, timed and profiled."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
import torch

from hirelc_deploy.models.naming import BlockMapper
from hirelc_deploy.runtime.tensorrt import (
    TensorRTError,
    check_precisions,
    network_flags,
    parse_version,
    require_tensorrt,
    tensor_precision,
    tensorrt_version,
    unchecked_blocks,
)
from hirelc_deploy.runtime.tensorrt_runner import block_times

B0, B1, B2 = "/layer1/layer1.0/", "/layer1/layer1.1/", "/layer2/layer2.0/"
PREFIXES = [B0, B1, B2]

INT8_NC32 = "Thirty-two wide channel vectorized row major Int8 format"
FP16_NHWC8 = "Channel major FP16 format where channel % 8 == 0"
FP32_LINEAR = "Row major linear FP32"


def layer(name, layer_type, inputs, outputs, parameter_type=None):
    """One DETAILED-verbosity inspector entry; ``inputs``/``outputs`` are (tensor name, Format/Datatype) pairs."""
    entry = {"Name": name, "LayerType": layer_type,
             "Inputs": [{"Name": n, "Dimensions": [1, 16, 32, 32], "Format/Datatype": f} for n, f in inputs],
             "Outputs": [{"Name": n, "Dimensions": [1, 16, 32, 32], "Format/Datatype": f} for n, f in outputs]}
    if parameter_type:
        entry["ParameterType"] = parameter_type
    return entry


def conv(name, inputs, outputs):
    return layer(name, "CaskConvolution", inputs, outputs, "Convolution")


def good_engine() -> dict:
    """Stem FP32, block 0 INT8, block 1 FP16, block 2 FP32, head FP32, as TensorRT 10 reports it."""
    return {"Layers": [
        conv("/conv1/Conv + /relu/Relu + /layer1/layer1.0/relu_Relu_output_0_int8/Q",
             [("input", FP32_LINEAR)], [("/layer1/layer1.0/relu_Relu_output_0_int8_q", INT8_NC32)]),
        conv("/layer1/layer1.0/conv1/Conv + /layer1/layer1.0/relu/Relu",
             [("/layer1/layer1.0/relu_Relu_output_0_int8_q", INT8_NC32)],
             [("/layer1/layer1.0/relu/Relu_output_0", "Int8 NC/32HW32")]),
        conv("/layer1/layer1.0/conv2/Conv + /layer1/layer1.0/Add + /layer1/layer1.0/relu_1/Relu + "
             "/layer1/layer1.1/layer1_layer1.0_relu_1_Relu_output_0_fp16/Cast",
             [("/layer1/layer1.0/relu/Relu_output_0", "INT8")],
             [("/layer1/layer1.1/layer1_layer1.0_relu_1_Relu_output_0_fp16", FP16_NHWC8)]),
        conv("/layer1/layer1.1/conv1/Conv + /layer1/layer1.1/relu/Relu",
             [("/layer1/layer1.1/layer1_layer1.0_relu_1_Relu_output_0_fp16", FP16_NHWC8)],
             [("/layer1/layer1.1/relu/Relu_output_0", "Half")]),
        conv("/layer1/layer1.1/conv2/Conv + /layer1/layer1.1/Add + /layer1/layer1.1/relu_1/Relu + "
             "/layer1/layer1.1/relu_1/Relu_output_0_fp32/Cast",
             [("/layer1/layer1.1/relu/Relu_output_0", "Half")],
             [("/layer1/layer1.1/relu_1/Relu_output_0", FP32_LINEAR)]),
        layer("Reformatting CopyNode for Input Tensor 0 to /layer2/layer2.0/conv1/Conv + /layer2/layer2.0/relu/Relu",
              "Reformat", [("/layer1/layer1.1/relu_1/Relu_output_0", FP32_LINEAR)],
              [("Reformatted Input Tensor 0 to /layer2/layer2.0/conv1/Conv + /layer2/layer2.0/relu/Relu",
                "Channel major FP32 format where channel % 4 == 0")], "Reformat"),
        conv("/layer2/layer2.0/conv1/Conv + /layer2/layer2.0/relu/Relu",
             [("Reformatted Input Tensor 0 to /layer2/layer2.0/conv1/Conv + /layer2/layer2.0/relu/Relu", "Float")],
             [("/layer2/layer2.0/relu/Relu_output_0", "Float")]),
        conv("/layer2/layer2.0/conv2/Conv + /layer2/layer2.0/Add + /layer2/layer2.0/relu_1/Relu",
             [("/layer2/layer2.0/relu/Relu_output_0", "FP32")], [("/layer2/layer2.0/relu_1/Relu_output_0", "FP32")]),
        layer("/avgpool/GlobalAveragePool", "CaskPooling", [("/layer2/layer2.0/relu_1/Relu_output_0", FP32_LINEAR)],
              [("/avgpool/GlobalAveragePool_output_0", FP32_LINEAR)], "Pooling"),
        layer("/linear/Gemm", "CaskGemmMatrixMultiply", [("/avgpool/GlobalAveragePool_output_0", FP32_LINEAR)],
              [("logits", FP32_LINEAR)], "MatrixMultiply"),
    ], "Bindings": ["input", "logits"]}


EXPECTED = {B0: "int8", B1: "fp16", B2: "fp32"}


def int8_fallback_engine() -> dict:
    """Block 0 asked for INT8 but TensorRT left its Q/DQ unfused: Float convolutions between reformats."""
    info = good_engine()
    fallback = [
        layer("/conv1/Conv + /relu/Relu", "CaskConvolution", [("input", FP32_LINEAR)],
              [("/relu/Relu_output_0", FP32_LINEAR)], "Convolution"),
        layer("/layer1/layer1.0/relu_Relu_output_0_int8/Q", "Scale", [("/relu/Relu_output_0", FP32_LINEAR)],
              [("/layer1/layer1.0/relu_Relu_output_0_int8_q", "Row major Int8 format")], "Scale"),
        layer("Reformatting CopyNode for Input Tensor 0 to /layer1/layer1.0/conv1/Conv + /layer1/layer1.0/relu/Relu",
              "Reformat", [("/layer1/layer1.0/relu_Relu_output_0_int8_q", "Row major Int8 format")],
              [("Reformatted Input Tensor 0 to /layer1/layer1.0/conv1/Conv + /layer1/layer1.0/relu/Relu",
                FP32_LINEAR)], "Reformat"),
        conv("/layer1/layer1.0/conv1/Conv + /layer1/layer1.0/relu/Relu",
             [("Reformatted Input Tensor 0 to /layer1/layer1.0/conv1/Conv + /layer1/layer1.0/relu/Relu",
               FP32_LINEAR)], [("/layer1/layer1.0/relu/Relu_output_0", FP32_LINEAR)]),
        conv("/layer1/layer1.0/conv2/Conv + /layer1/layer1.0/Add + /layer1/layer1.0/relu_1/Relu + "
             "/layer1/layer1.1/layer1_layer1.0_relu_1_Relu_output_0_fp16/Cast",
             [("/layer1/layer1.0/relu/Relu_output_0", FP32_LINEAR)],
             [("/layer1/layer1.1/layer1_layer1.0_relu_1_Relu_output_0_fp16", FP16_NHWC8)]),
    ]
    info["Layers"] = fallback + info["Layers"][3:]
    return info


@pytest.mark.parametrize("text, precision", [
    (INT8_NC32, "int8"), ("Int8 NC/32HW32", "int8"), ("Channel major INT8 format where channel % 16 == 0", "int8"),
    (FP16_NHWC8, "fp16"), ("Half", "fp16"), ("FP16 NHWC8", "fp16"),
    (FP32_LINEAR, "fp32"), ("Float", "fp32"), ("FP32", "fp32"),
    ("Row major linear FP8 format", "fp8"), ("BFloat16", "bf16"), ("Unknown format", None),
])
def test_tensor_precision_reads_every_spelling(text, precision):
    assert tensor_precision(text) == precision


def test_fused_and_reformat_layer_names_map_to_their_blocks():
    spanning = ("/layer1/layer1.0/conv2/Conv + /layer1/layer1.0/Add + /layer1/layer1.0/relu_1/Relu + "
                "/layer1/layer1.1/layer1_layer1.0_relu_1_Relu_output_0_int8/Q")
    mapper = BlockMapper(PREFIXES)
    assert mapper.mentioned(spanning) == [B0, B1]
    assert mapper.mentioned("Reformatting CopyNode for Input Tensor 0 to /layer1/layer1.1/conv1/Conv + "
                        "/layer1/layer1.0/relu_1/Relu_output_0_fp32/Cast") == [B1, B0]
    assert mapper.mentioned("/conv1/Conv + /relu/Relu") == []
    # Prefixes end with '/', so block 1 is not found inside block 10's names.
    assert BlockMapper(["/features/features.1/"]).mentioned("/features/features.10/conv/conv.0/Conv") == []


def test_a_well_built_mixed_engine_passes():
    assert check_precisions(good_engine(), EXPECTED) == []


def test_int8_block_running_float_between_reformats_is_reported():
    problems = check_precisions(int8_fallback_engine(), EXPECTED)
    assert len(problems) == 2
    conv_problem, reformat_problem = problems
    assert B0 in conv_problem and "int8" in conv_problem and "2 of 2" in conv_problem and "fp32" in conv_problem
    assert B0 in reformat_problem and "Reformatting CopyNode" in reformat_problem and "int8 to fp32" in reformat_problem
    assert not any(B1 in p or B2 in p for p in problems)


def test_fp16_block_running_fp32_is_reported_and_a_block_without_its_own_layer_is_unchecked():
    info = good_engine()
    info["Layers"][3]["Inputs"][0]["Format/Datatype"] = FP32_LINEAR
    expected = {**EXPECTED, "/layer3/layer3.0/": "fp32"}
    problems = check_precisions(info, expected)
    assert len(problems) == 1
    assert B1 in problems[0] and "fp16" in problems[0] and "1 of 2" in problems[0]
    assert unchecked_blocks(info, expected) == ["/layer3/layer3.0/"]
    assert unchecked_blocks(good_engine(), EXPECTED) == []


def test_layer_names_only_verbosity_is_refused_clearly():
    names_only = {"Layers": ["/conv1/Conv + /relu/Relu", "/layer1/layer1.0/conv1/Conv"], "Bindings": ["input"]}
    with pytest.raises(TensorRTError, match="DETAILED"):
        check_precisions(names_only, EXPECTED)
    with pytest.raises(TensorRTError, match="'Layers'"):
        check_precisions({"Bindings": []}, EXPECTED)


def test_block_times_charge_fused_layers_to_their_convolution_and_stem_head():
    layer_ms = {
        # The stem's convolution carries block 0's input quantization, an epilogue: the layer is the stem's.
        "/conv1/Conv + /relu/Relu + /layer1/layer1.0/relu_Relu_output_0_int8/Q": 1.0,
        "Reformatting CopyNode for Input Tensor 0 to /layer1/layer1.0/conv1/Conv + /layer1/layer1.0/relu/Relu": 0.5,
        "/layer1/layer1.0/conv1/Conv + /layer1/layer1.0/relu/Relu": 2.0,
        "/layer1/layer1.0/conv2/Conv + /layer1/layer1.0/Add + /layer1/layer1.1/x_int8/Q": 3.0,
        "/layer1/layer1.1/conv1/Conv + /layer1/layer1.1/relu/Relu": 2.0,
        "/avgpool/GlobalAveragePool": 0.25,
        "/linear/Gemm": 0.75,
        "__myl_Cast_myl9_2": 0.125,  # made up by TensorRT, after the blocks: the head's
    }
    per_block, stem, head = block_times(layer_ms, BlockMapper(PREFIXES))
    # Block 0's conv2 carries block 1's input quantization: the layer is block 0's, like the reformat it feeds.
    assert per_block == {B0: pytest.approx(0.5 + 2.0 + 3.0), B1: pytest.approx(2.0), B2: 0.0}
    assert stem == pytest.approx(1.0)
    assert head == pytest.approx(1.125)
    assert sum(per_block.values()) + stem + head == pytest.approx(sum(layer_ms.values()))


def test_version_decides_the_network_flags():
    trt10 = SimpleNamespace(NetworkDefinitionCreationFlag=SimpleNamespace(EXPLICIT_BATCH=0, STRONGLY_TYPED=1))
    assert network_flags((10, 8, 0), trt10) == 1 << 1
    # 11.x is always strongly typed: the deprecated flag is not touched (this fake module has none).
    assert network_flags((11, 0, 0), SimpleNamespace()) == 0
    with pytest.raises(TensorRTError, match="too old"):
        network_flags((9, 3, 0), trt10)


def test_parse_version():
    assert parse_version("10.13.3.9") == (10, 13, 3)
    assert parse_version("11.0") == (11, 0, 0)
    with pytest.raises(TensorRTError):
        parse_version("unknown")


def test_require_tensorrt_explains_what_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt now fails, as where it is not installed
    assert tensorrt_version() is None
    with pytest.raises(TensorRTError, match=r"needs the tensorrt package .* not installed") as missing:
        require_tensorrt()
    assert "\n" not in str(missing.value)
    monkeypatch.setitem(sys.modules, "tensorrt", SimpleNamespace(__version__="9.3.0.1"))
    with pytest.raises(TensorRTError, match="9.3.0 is too old"):
        require_tensorrt()
    monkeypatch.setitem(sys.modules, "tensorrt", SimpleNamespace(__version__="10.8.0"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(TensorRTError, match="no CUDA GPU"):
        require_tensorrt()


def test_backends_say_whether_this_machine_can_measure(monkeypatch, tiny_target):
    from hirelc_deploy.targets import backend_of, load_target

    assert backend_of(tiny_target).name == "onnxruntime" and backend_of(tiny_target).unavailable() is None
    trt = backend_of(load_target("trt-h100-b1"))
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # the import fails, as on a machine without TensorRT
    assert trt.name == "tensorrt" and "tensorrt is not installed" in trt.unavailable()


def needs_gpu(test):
    """A test that builds and runs real engines: marked gpu and tensorrt, skipped where either is missing."""
    skip = pytest.mark.skipif(tensorrt_version() is None or not torch.cuda.is_available(),
                              reason="needs the tensorrt package and an NVIDIA GPU")
    return pytest.mark.gpu(pytest.mark.tensorrt(skip(test)))


@pytest.fixture(scope="module")
def resnet20_engine(tmp_path_factory):
    """ResNet-20 with blocks cycling INT8, FP16, FP32, built twice with one timing cache."""
    from hirelc_deploy.models import get_model_spec
    from hirelc_deploy.runtime.tensorrt import build_engine
    from hirelc_deploy.targets import get_backend

    tmp = tmp_path_factory.mktemp("trt")
    spec = get_model_spec("resnet20")
    blocks = spec.blocks()
    precisions = tuple(("int8", "fp16", "fp32")[i % 3] for i in range(len(blocks)))
    onnx_path = tmp / "resnet20.onnx"
    get_backend("tensorrt").build_variant(spec, [b.full_width for b in blocks], precisions, (1, *spec.input_shape),
                                          onnx_path)
    first = build_engine(onnx_path, tmp / "first.engine", tmp / "timing.cache")
    build = build_engine(onnx_path, tmp / "resnet20.engine", tmp / "timing.cache")
    return spec, dict(zip((b.onnx_prefix for b in blocks), precisions)), first, build


@needs_gpu
def test_real_engine_is_built_and_runs_each_block_in_its_precision(resnet20_engine):
    from hirelc_deploy.runtime.tensorrt import load_layer_info

    _, expected, first, build = resnet20_engine
    assert build.engine_path.stat().st_size > 0 and build.timing_cache_path.stat().st_size > 0
    assert build.layer_info_path.name == "resnet20.engine.layers.json"
    assert build.tensorrt_version == tensorrt_version()
    assert check_precisions(load_layer_info(build.layer_info_path), expected) == []


@needs_gpu
def test_real_engine_is_timed_and_profiled_per_block(resnet20_engine):
    from hirelc_deploy.runtime.tensorrt_runner import profile_layers, time_engines
    from hirelc_deploy.targets import MeasureSettings

    _, expected, first, build = resnet20_engine
    settings = MeasureSettings(warmup_runs=5, bursts=3, max_bursts=3, runs_per_burst=10, max_retries=0,
                               max_wait_s=0.0, max_busy_cores=64.0)
    timings = time_engines({"a": first.engine_path, "b": build.engine_path}, settings)
    assert set(timings) == {"a", "b"} and all(t.median_ms > 0 and t.bursts == 3 for t in timings.values())
    layer_ms = profile_layers(build.engine_path, runs=10, warmup=5)
    per_block, stem, head = block_times(layer_ms, BlockMapper(expected))
    assert all(ms > 0 for ms in per_block.values()) and stem > 0 and head > 0
    assert sum(per_block.values()) + stem + head == pytest.approx(sum(layer_ms.values()))


def test_tensorrt_11_reports_with_split_type_and_format_fields_are_read():
    """TensorRT 11 split each tensor's "Format/Datatype" into "DataType" and "Format"."""
    def split(entry: dict) -> dict:
        for side in ("Inputs", "Outputs"):
            for tensor in entry[side]:
                text = tensor.pop("Format/Datatype")
                names = {"int8": "Int8", "fp16": "Half", "fp32": "Float"}
                tensor["DataType"], tensor["Format"] = names[tensor_precision(text)], "kLINEAR"
        return entry

    engine = {"Layers": [split(entry) for entry in good_engine()["Layers"]]}
    assert check_precisions(engine, EXPECTED) == []
    bad = {**EXPECTED, B1: "int8"}
    problems = check_precisions(engine, bad)
    assert len(problems) == 1 and B1 in problems[0]
