"""The search space a latency table offers, and policies planned in it (latency known before export)."""

from __future__ import annotations

from typing import Sequence

from ..latency import LatencyTable
from ..policy import Policy
from ..sensitivity import Sensitivity


def nearest_widths(table: LatencyTable, fraction: float) -> list[int]:
    """Per block, the table width closest to ``fraction`` of the block's full width."""
    return [min(b.widths, key=lambda w: abs(w - fraction * b.full_width)) for b in table.blocks]


def plan_policy(table: LatencyTable, widths: Sequence[int], precisions: Sequence[str], **notes) -> Policy:
    """A policy with the latency the table predicts for it (labelled with the table's kind)."""
    return Policy.from_lists(
        table.model, table.target, [b.name for b in table.blocks], widths, precisions,
        predicted_latency_ms=table.predict(widths, precisions), latency_kind=table.kind, notes=dict(notes),
    )


def _removal_cost(scores: Sequence[float], full: int, width: int) -> float:
    """Fisher saliency of the channels a block loses going from ``full`` to ``width`` (least important first)."""
    return sum(sorted(scores)[: full - width])


def fisher_greedy_widths(table: LatencyTable, sensitivity: Sensitivity, precisions: Sequence[str],
                         budget_ms: float) -> list[int]:
    """Shrink blocks step by step, always where the least Fisher saliency buys the most latency, until the
    predicted latency fits ``budget_ms`` (or nothing can shrink further)."""
    widths = [b.full_width for b in table.blocks]
    scores = [row.channel_fisher[0] if row.channel_fisher else [] for row in sensitivity.blocks]
    while table.predict(widths, precisions) > budget_ms:
        best, best_ratio = None, None
        for i, block in enumerate(table.blocks):
            if not scores[i]:
                continue
            now = block.lookup(widths[i], precisions[i])
            for step in (w for w in block.widths if w < widths[i]):
                # A narrower width is not always faster (e.g. 12 channels miss the 16-wide SIMD kernels).
                saved = now - block.lookup(step, precisions[i])
                if saved <= 0:
                    continue
                cost = (_removal_cost(scores[i], block.full_width, step)
                        - _removal_cost(scores[i], block.full_width, widths[i]))
                if best_ratio is None or cost / saved < best_ratio:
                    best, best_ratio = (i, step), cost / saved
        if best is None:
            break
        widths[best[0]] = best[1]
    return widths
