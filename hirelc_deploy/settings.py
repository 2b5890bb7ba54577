"""Where the project finds its data: one place, overridable by environment variables."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent


def shared_dir() -> Path:
    """Shared datasets and checkpoints: ``$HIRELC_SHARED``, default ``../shared`` beside the repository."""
    return Path(os.environ.get("HIRELC_SHARED", REPO_ROOT.parent / "shared"))


def profiles_dir() -> Path:
    """Directory of target TOML files (``$HIRELC_PROFILES``, default ``hw_profiles/`` in the repo)."""
    return Path(os.environ.get("HIRELC_PROFILES", REPO_ROOT / "hw_profiles"))


def tables_dir() -> Path:
    """Directory of latency tables (``$HIRELC_TABLES``, default ``latency_tables/`` in the repo)."""
    return Path(os.environ.get("HIRELC_TABLES", REPO_ROOT / "latency_tables"))


def cache_dir() -> Path:
    """Downloaded public checkpoints: ``$HIRELC_CACHE``, default ``~/.cache/hirelc``."""
    return Path(os.environ.get("HIRELC_CACHE", Path.home() / ".cache" / "hirelc"))
