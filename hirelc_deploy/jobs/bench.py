"""``hirelc bench`` as a library call: latency of a deployable file on the target (interleaved with a baseline),
its top-1 on a test split where the target's runtime can score it, and its size, through the target's backend."""

from __future__ import annotations

from pathlib import Path

import onnx

from ..data import Normalize, load_images, open_dataset
from ..errors import HirelcError
from ..artifacts import load_manifest
from ..models import ModelSpec, get_model_spec
from ..pipeline import open_test_images
from ..progress import Reporter, SilentReporter, steps_of
from ..records import BenchResult, DataOptions
from ..targets import Target, backend_of, load_target

# A file with no manifest beside it to say which model it is gets a model's default normalisation (ImageNet's).
DEFAULT_NORMALIZE = Normalize(ModelSpec.mean, ModelSpec.std)


def bench(artifact: Path, target: str | Target, *, data: Path | None = None, baseline: Path | None = None,
          limit: int | None = None, out: Path | None = None, reporter: Reporter | None = None,
          data_options: DataOptions = DataOptions()) -> BenchResult:
    """Measure ``artifact`` on ``target`` (this machine must be its device): latency interleaved with
    ``baseline``, top-1 on the test split of ``data`` (``limit`` images per class; decoded or streamed and
    preprocessed for the model's input as ``data_options`` say), file sizes. The result is also written to
    ``out`` (default: beside the artifact, ``NAME.bench.json``)."""
    reporter = reporter or SilentReporter()
    tgt = target if isinstance(target, Target) else load_target(target)
    backend = backend_of(tgt)
    artifact = Path(artifact)
    backend.check_bench(artifact, baseline, scoring=data is not None)
    images = None
    if data is not None:
        shape = input_shape_of(artifact)
        if shape is None:  # nothing says the input size: images as stored, resized per batch to the engine's
            dataset = open_dataset(Path(data), "test", limit_per_class=limit)
            reporter.phase("decoding test images", len(dataset))
            images = load_images(dataset, on_image=reporter.advance)
        else:
            images = open_test_images(shape, Path(data), data_options, limit, reporter=reporter)
    reporter.phase("benchmarking", backend.bench_steps(tgt, baseline is not None))
    result = backend.bench_files(artifact, tgt, Path(baseline) if baseline else None, images,
                                 normalization_of(artifact), steps_of(reporter))
    result.save(out or artifact.with_suffix(".bench.json"))
    return result


def input_shape_of(artifact: Path) -> list[int] | None:
    """The model's C x H x W input: from the manifest beside ``artifact``, else from the ONNX graph itself
    (None for an engine file without a manifest)."""
    try:
        ref = load_manifest(Path(artifact).parent).model_ref
        if ref is not None and ref.input_shape:
            return list(ref.input_shape)
    except HirelcError:
        pass
    if Path(artifact).suffix != ".onnx":
        return None
    graph = onnx.load(str(artifact), load_external_data=False).graph
    dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    return dims[1:] if len(dims) == 4 and all(dims[1:]) else None


def normalization_of(artifact: Path) -> Normalize:
    """The input normalisation of the model named by the manifest beside ``artifact`` (ImageNet's without one)."""
    try:
        manifest = load_manifest(Path(artifact).parent)
    except HirelcError:
        return DEFAULT_NORMALIZE
    ref = manifest.model_ref
    if ref is not None and ref.mean and ref.std:
        return Normalize(tuple(ref.mean), tuple(ref.std))
    try:
        spec = get_model_spec(manifest.model)
    except HirelcError:
        return DEFAULT_NORMALIZE
    return Normalize(spec.mean, spec.std)
