"""Built-in architectures, their blocks and safe checkpoint loading."""

from .blocks import BlockInfo, CompressibleBlock, describe_blocks
from .checkpoints import load_weights, read_state_dict
from .registry import MODELS, ModelSpec, get_model_spec

__all__ = [
    "BlockInfo",
    "CompressibleBlock",
    "MODELS",
    "ModelSpec",
    "describe_blocks",
    "get_model_spec",
    "load_weights",
    "read_state_dict",
]
