"""Targets (parsed TOML files, shipped with the package or the user's own) and device fingerprints."""

from .backends import Backend, backend_of, current_fingerprint, get_backend
from .catalog import available_targets, load_target
from .fingerprint import Fingerprint
from .target import MeasureSettings, Target, parse_target

__all__ = ["Backend", "Fingerprint", "MeasureSettings", "Target", "available_targets", "backend_of",
           "current_fingerprint", "get_backend", "load_target", "parse_target"]
