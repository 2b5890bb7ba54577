"""Latency: measured block tables, how they are profiled, and how well they predict real engines."""

from .profile import profile_steps
from .table import LatencyTable, default_table_path, load_table
from .validate import ValidationReport, validate, validate_steps

__all__ = ["LatencyTable", "ValidationReport", "default_table_path", "load_table", "profile_steps", "validate",
           "validate_steps"]
