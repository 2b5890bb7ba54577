"""Models: the zoo and a user's factories, their units found by automatic block discovery, and safe checkpoint
loading."""

from .checkpoints import load_weights, read_state_dict
from .discovery import BlockInfo, Discovery, LeftAlone, UntraceableModel, discover
from .registry import MODELS, as_spec, get_model_spec, resolve_model
from .spec import ModelSpec

__all__ = [
    "BlockInfo",
    "Discovery",
    "LeftAlone",
    "MODELS",
    "ModelSpec",
    "UntraceableModel",
    "as_spec",
    "discover",
    "get_model_spec",
    "load_weights",
    "read_state_dict",
    "resolve_model",
]
