"""Models by reference: the zoo's built-in architectures by name, and a user's factories (``user_model.py``),
each resolved to a ``ModelSpec``."""

from __future__ import annotations

import dataclasses
import json
from functools import partial
from pathlib import Path

import torch

from ..errors import InputError
from ..records import ModelRef
from .cifar_resnet import CifarResNet
from .mobilenet_v2 import MobileNetV2
from .resnet import BasicBlock, Bottleneck, ResNet
from .spec import ModelSpec
from .user_model import class_count, is_file_reference, load

MODELS: dict[str, ModelSpec] = {
    **{
        f"resnet{d}": ModelSpec(f"resnet{d}", partial(CifarResNet, d), (3, 32, 32), 10)
        for d in (20, 32, 44, 56)
    },
    "resnet18": ModelSpec("resnet18", partial(ResNet, BasicBlock, [2, 2, 2, 2]), (3, 224, 224), 1000),
    "resnet50": ModelSpec("resnet50", partial(ResNet, Bottleneck, [3, 4, 6, 3]), (3, 224, 224), 1000),
    "mobilenet_v2": ModelSpec("mobilenet_v2", MobileNetV2, (3, 224, 224), 1000),
}

_RESOLVED: dict[str, ModelSpec] = {}


def resolve_model(ref: ModelRef) -> ModelSpec:
    """The spec a reference names: a zoo model (optionally with another input shape or normalisation), or a
    user's factory (``user_model.load``). Resolved once per process and reference."""
    ref = dataclasses.replace(ref, model=absolute_reference(ref.model))
    cache_key = json.dumps([ref.model, ref.args, ref.input_shape, ref.mean, ref.std], sort_keys=True, default=str)
    if cache_key in _RESOLVED:
        return _RESOLVED[cache_key]
    if ref.model in MODELS:
        if ref.args:
            raise InputError(f"--model-arg: the built-in model {ref.model} takes no factory arguments")
        zoo = MODELS[ref.model]
        if ref.input_shape is not None and tuple(ref.input_shape) != zoo.input_shape:
            with torch.random.fork_rng(devices=[]):
                class_count(zoo.make(), tuple(ref.input_shape), ref.model)
        else:  # the zoo's own input: the zoo's own spec and table
            ref = dataclasses.replace(ref, input_shape=None)
        spec = zoo if ref.input_shape is None and ref.mean is None and ref.std is None else ModelSpec(
            zoo.name, zoo.builder, tuple(ref.input_shape or zoo.input_shape), zoo.num_classes,
            tuple(ref.mean or zoo.mean), tuple(ref.std or zoo.std), ref)
    elif ":" in ref.model:
        spec = load(ref)
        spec.blocks()  # an untraceable model fails here, before any run directory or long work
    else:
        raise InputError(f"--model: unknown model '{ref.model}' (choose from {', '.join(MODELS)}, or give "
                         "file.py:factory or package.module:factory)")
    _RESOLVED[cache_key] = spec
    return spec


def absolute_reference(model: str) -> str:
    """A ``file.py:factory`` reference with the file's path made absolute (so a table or a resumed run finds the
    same model from any directory); zoo names and ``package.module:factory`` unchanged."""
    location, sep, factory = model.rpartition(":")
    if sep and is_file_reference(location) and Path(location).expanduser().exists():
        return f"{Path(location).expanduser().resolve()}:{factory}"
    return model


def as_spec(model: str | ModelRef | ModelSpec) -> ModelSpec:
    """The spec of a model given by name, reference or spec (what the jobs and the Python API accept)."""
    if isinstance(model, ModelSpec):
        return model
    return resolve_model(model if isinstance(model, ModelRef) else ModelRef(str(model)))


def get_model_spec(name: str) -> ModelSpec:
    """A model by name (zoo) or factory reference, with its default input and normalisation."""
    return resolve_model(ModelRef(name))
