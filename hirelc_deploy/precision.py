"""Precision: the number formats a block can run in.

A ``StrEnum``, so a member is also its string (``Precision.INT8 == "int8"``): policies, tables and targets keep
plain strings in their JSON and compare equal to the enum without conversion.
"""

from __future__ import annotations

from enum import StrEnum


class Precision(StrEnum):
    """A block's number format on a target."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"
    FP8 = "fp8"


REFERENCE = Precision.FP32  # the precision of the stem, the head, removed blocks and every uncompressed model
