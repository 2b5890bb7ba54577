"""Where the project finds its data: one place, overridable by environment variables."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent


def shared_dir() -> Path:
    """Shared datasets and checkpoints: ``$HIRELC_SHARED``, default ``../shared`` beside the repository."""
    return Path(os.environ.get("HIRELC_SHARED", REPO_ROOT.parent / "shared"))


def hirelc_home() -> Path:
    """The user's own targets and tables: ``$HIRELC_HOME``, default ``~/.hirelc``."""
    return Path(os.environ.get("HIRELC_HOME", Path.home() / ".hirelc"))


def user_targets_dir() -> Path:
    """The user's target TOML files (looked up before the shipped ones): ``$HIRELC_PROFILES``, default
    ``$HIRELC_HOME/targets``."""
    return Path(os.environ.get("HIRELC_PROFILES", hirelc_home() / "targets"))


def tables_dir() -> Path:
    """Measured latency tables: ``$HIRELC_TABLES``, default ``$HIRELC_HOME/tables``."""
    return Path(os.environ.get("HIRELC_TABLES", hirelc_home() / "tables"))


def cache_dir() -> Path:
    """Downloaded public checkpoints: ``$HIRELC_CACHE``, default ``~/.cache/hirelc``."""
    return Path(os.environ.get("HIRELC_CACHE", Path.home() / ".cache" / "hirelc"))
