"""Targets (parsed ``hw_profiles/*.toml``) and device fingerprints."""

from .fingerprint import Fingerprint, current_fingerprint
from .target import MeasureSettings, Target, available_targets, load_target, parse_target

__all__ = ["Fingerprint", "MeasureSettings", "Target", "available_targets", "current_fingerprint", "load_target",
           "parse_target"]
