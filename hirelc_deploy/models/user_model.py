"""A user's model: ``file.py:factory`` or ``package.module:factory``, called with ``--model-arg`` keywords.

Every way this can go wrong is an InputError naming the flag and what is wrong: a missing file or module, a
factory that is missing, raises or returns something that is not a module, an input shape the model rejects,
an output that is not (batch, classes) logits.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD
from ..errors import InputError
from ..records import ModelRef
from .spec import ModelSpec

DEFAULT_INPUT_SHAPE = (3, 224, 224)
USER_MODULE_PREFIX = "hirelc_user_"  # the module name of a model file loaded by path (not importable elsewhere)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def parse_model_args(pairs: list[str]) -> dict:
    """``--model-arg key=value`` pairs as keyword arguments: values are Python literals where they parse as one
    (``width=2``, ``se=True``, ``stages=[2,2]``), text otherwise."""
    args = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip().isidentifier():
            raise InputError(f"--model-arg {pair!r}: expected key=value with a Python identifier as key")
        try:
            parsed = ast.literal_eval(value)
        except Exception:  # literal_eval raises ValueError, SyntaxError, TypeError, MemoryError, ...
            parsed = value
        try:
            # Runs record the arguments as JSON and resume from it: what JSON cannot hold is refused, and tuples
            # become lists here, so the factory gets the same value in the first run and a resumed one.
            args[key.strip()] = json.loads(json.dumps(parsed))
        except (TypeError, ValueError):
            raise InputError(f"--model-arg {pair!r}: the value must be a number, text, true/false, None, or a "
                             "list or dict of those") from None
    return args


def parse_shape(text: str, flag: str = "--input-shape") -> list[int]:
    """``3x224x224`` as [3, 224, 224]."""
    try:
        shape = [int(part) for part in text.lower().split("x")]
    except ValueError:
        shape = []
    if len(shape) != 3 or min(shape) <= 0:
        raise InputError(f"{flag} {text!r}: expected CxHxW with three positive integers, e.g. 3x224x224")
    return shape


def is_file_reference(location: str) -> bool:
    """Whether the part of ``--model`` before ``:factory`` names a file (else a module to import)."""
    return location.endswith(".py") or "/" in location or "\\" in location


def _import_factory(reference: str):
    location, _, name = reference.rpartition(":")
    if not location or not name.isidentifier():
        raise InputError(f"--model {reference}: expected file.py:factory or package.module:factory")
    if is_file_reference(location):
        path = Path(location).expanduser().resolve()
        if not path.is_file():
            raise InputError(f"--model {reference}: file {location} does not exist")
        module_name = f"{USER_MODULE_PREFIX}{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
        if module_name in sys.modules:  # one import per file and process: its classes keep one identity
            return _factory(sys.modules[module_name], reference, location, name)
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise InputError(f"--model {reference}: {location} is not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # dataclasses and pickling look the module up by name
        sys.path.insert(0, str(path.parent))  # the file may import its neighbours, as when run as a script
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(module_name, None)
            raise InputError(f"--model {reference}: importing {location} failed ({_first_line(exc)})") from None
        finally:
            sys.path.remove(str(path.parent))
    else:
        if "" not in sys.path and str(Path.cwd()) not in sys.path:
            sys.path.append(str(Path.cwd()))  # a console script does not search the working directory
        try:
            module = importlib.import_module(location)
        except Exception as exc:
            raise InputError(f"--model {reference}: cannot import module {location} ({_first_line(exc)})") from None
    return _factory(module, reference, location, name)


def _factory(module, reference: str, location: str, name: str):
    factory = getattr(module, name, None)
    if not callable(factory):
        raise InputError(f"--model {reference}: {location} has no callable '{name}'")
    return factory


def display_name(ref: ModelRef) -> str:
    """How runs, tables and reports name the model: the file name (not its directory) and factory, with the
    factory's arguments."""
    location, _, name = ref.model.rpartition(":")
    short = Path(location).name if location.endswith(".py") else location
    args = ",".join(f"{k}={v!r}" for k, v in sorted(ref.args.items()))
    return f"{short}:{name}" + (f"({args})" if args else "")


def load(ref: ModelRef) -> ModelSpec:
    """The spec of a user's factory: called once to check it builds a module that accepts the input shape."""
    factory = _import_factory(ref.model)

    def build() -> nn.Module:
        try:
            model = factory(**ref.args)
        except Exception as exc:
            raise InputError(f"--model {ref.model}: the factory raised {_first_line(exc)}") from None
        if not isinstance(model, nn.Module):
            raise InputError(f"--model {ref.model}: the factory returned {type(model).__name__}, "
                             "not a torch.nn.Module")
        return model

    shape = tuple(ref.input_shape or DEFAULT_INPUT_SHAPE)
    with torch.random.fork_rng(devices=[]):  # a throwaway model: the global RNG stays where the caller left it
        classes = class_count(build().eval(), shape, ref.model)
    mean = tuple(ref.mean or (IMAGENET_MEAN if shape[0] == 3 else (0.5,) * shape[0]))
    std = tuple(ref.std or (IMAGENET_STD if shape[0] == 3 else (0.5,) * shape[0]))
    return ModelSpec(display_name(ref), build, shape, classes, mean, std, ref, fixed_classes=True)


def class_count(model: nn.Module, shape: Sequence[int], reference: str) -> int:
    """The number of classes ``model`` predicts for one input of ``shape`` (C, H, W); an InputError when it
    rejects the shape or does not return (batch, classes) logits."""
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, *shape))
    except Exception as exc:
        raise InputError(f"--input-shape {'x'.join(map(str, shape))}: the model rejects it "
                         f"({_first_line(exc)})") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise InputError(f"--model {reference}: the model must return (batch, classes) logits, "
                         f"got {tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}")
    return int(out.shape[1])
