"""Deterministic train / held-out index splits."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _check_fraction(heldout_fraction: float) -> None:
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction!r}")


def _round(x: float) -> int:
    # Half-up, not Python's banker's rounding, so 0.5 samples always go the same way.
    return int(np.floor(x + 0.5))


def split_indices(n: int, heldout_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Random split of ``range(n)``; same (n, fraction, seed) gives the same sorted (train, heldout)."""
    _check_fraction(heldout_fraction)
    if not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"split_indices needs an int n >= 2, got {n!r}")
    n_heldout = min(max(_round(n * heldout_fraction), 1), n - 1)  # both sides non-empty
    perm = np.random.default_rng(seed).permutation(n)
    return sorted(perm[n_heldout:].tolist()), sorted(perm[:n_heldout].tolist())


def stratified_split(labels: Sequence[int], heldout_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Like :func:`split_indices`, but each class gives ``round(count * fraction)`` samples to the held-out side."""
    _check_fraction(heldout_fraction)
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) < 2:
        raise ValueError(f"stratified_split needs a 1-D sequence of at least 2 labels, got shape {labels.shape}")
    rng = np.random.default_rng(seed)
    train: list[int] = []
    heldout: list[int] = []
    for cls in np.unique(labels):  # sorted, so the rng draws happen in a fixed order
        members = rng.permutation(np.flatnonzero(labels == cls))
        n_heldout = _round(len(members) * heldout_fraction)
        heldout.extend(members[:n_heldout].tolist())
        train.extend(members[n_heldout:].tolist())
    if not train or not heldout:
        raise ValueError(f"too few samples per class to hold out {heldout_fraction} of {len(labels)} labels")
    return sorted(train), sorted(heldout)
