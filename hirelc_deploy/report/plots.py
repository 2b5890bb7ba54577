"""The report's figures, drawn with matplotlib's object API on the Agg canvas (no pyplot global state, no
display needed) and returned as PNG bytes.

Every function takes plain values already read from the records; none reads a file.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import PercentFormatter

from ..latency.table import LatencyTable
from ..precision import Precision

DPI = 110
PRECISION_COLOURS = {Precision.FP32: "#4c72b0", Precision.INT8: "#dd8452", Precision.FP16: "#55a868",
                     Precision.FP8: "#64b5cd"}
OTHER_PRECISION = "#937860"
MIXED_COLOUR = "#8172b3"
BUDGET_COLOUR = "#c44e52"
# Cell values are written into the heat map only while they stay legible.
MAX_ANNOTATED_CELLS = 320


def text(value: object) -> str:
    """A record string as matplotlib text: ``$`` would otherwise start mathtext."""
    return str(value).replace("$", r"\$")


def precision_colour(precision: str) -> str:
    """The colour a precision has in every figure."""
    return PRECISION_COLOURS.get(precision, OTHER_PRECISION)


def new_figure(width: float, height: float) -> Figure:
    """A figure on its own Agg canvas."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def to_png(fig: Figure) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def strategy_colours(strategies: Sequence[str]) -> dict[str, str]:
    """One colour per strategy, in order of first appearance."""
    ordered = list(dict.fromkeys(strategies))
    return {s: f"C{i % 10}" for i, s in enumerate(ordered)}


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no faster (or equally fast) point beats: by latency, each more accurate than all before."""
    front, best = [], -math.inf
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


@dataclass(frozen=True)
class Candidate:
    """One evaluated configuration as the figures need it."""

    strategy: str
    index: int
    predicted_ms: float  # table units
    top1: float


def _legend_right(ax, handles=None) -> None:
    # Outside the axes: with several strategies the legend would cover the points.
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)


def _budget_line(ax, budget_table_ms: float | None) -> None:
    if budget_table_ms is not None:
        ax.axvline(budget_table_ms, color=BUDGET_COLOUR, linestyle="--", linewidth=1.3,
                   label=f"budget {budget_table_ms:.4f} ms (table units)")


def pareto_figure(candidates: Sequence[Candidate], budget_table_ms: float | None,
                  chosen: Candidate | None, finalists: Sequence[Candidate]) -> bytes:
    """Predicted latency vs accuracy proxy of every candidate, the Pareto front, budget, finalists, choice."""
    fig = new_figure(11, 5.6)
    ax = fig.add_subplot()
    colours = strategy_colours([c.strategy for c in candidates])
    for strategy, colour in colours.items():
        mine = [c for c in candidates if c.strategy == strategy]
        ax.scatter([c.predicted_ms for c in mine], [c.top1 for c in mine], s=30, color=colour, alpha=0.75,
                   label=f"candidates: {text(strategy)} ({len(mine)})", zorder=3)
    front = pareto_front([(c.predicted_ms, c.top1) for c in candidates])
    if front:
        xs, ys = zip(*front)
        ax.step(xs, ys, where="post", color="#333333", linewidth=1.4, label="Pareto front (best proxy so fast)",
                zorder=2)
    _budget_line(ax, budget_table_ms)
    if finalists:
        ax.scatter([c.predicted_ms for c in finalists], [c.top1 for c in finalists], s=150, facecolors="none",
                   edgecolors="black", linewidths=1.3, label="finalists (then timed for real)", zorder=4)
    if chosen:
        ax.scatter([chosen.predicted_ms], [chosen.top1], s=320, marker="*", color="#f2c14e", edgecolors="black",
                   linewidths=1.0, label=f"chosen policy\n({text(chosen.strategy)}, evaluation #{chosen.index})",
                   zorder=5)
    ax.set_xlabel("latency, predicted (calibrated table), ms: a prediction, not a measurement")
    ax.set_ylabel("accuracy proxy: held-out top-1")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.grid(alpha=0.3)
    _legend_right(ax)
    return to_png(fig)


def progress_figure(candidates: Sequence[Candidate], budget_table_ms: float | None) -> bytes:
    """Proxy of each evaluation in order and the best feasible proxy so far, per strategy."""
    fig = new_figure(11, 4.2)
    ax = fig.add_subplot()
    any_over = False
    for strategy, colour in strategy_colours([c.strategy for c in candidates]).items():
        mine = sorted((c for c in candidates if c.strategy == strategy), key=lambda c: c.index)
        over = [budget_table_ms is not None and c.predicted_ms > budget_table_ms for c in mine]
        inside = [c for c, o in zip(mine, over) if not o]
        ax.scatter([c.index for c in inside], [c.top1 for c in inside], s=26, color=colour, alpha=0.8,
                   label=f"{text(strategy)}: evaluation", zorder=3)
        if inside:
            best = np.maximum.accumulate([c.top1 for c in inside])
            ax.step([c.index for c in inside], best, where="post", color=colour, linewidth=1.6,
                    label=f"{text(strategy)}: best within budget so far")
        outside = [c for c, o in zip(mine, over) if o]
        ax.scatter([c.index for c in outside], [c.top1 for c in outside], marker="x", s=50, color=colour, zorder=4)
        any_over = any_over or bool(outside)
    handles, _ = ax.get_legend_handles_labels()
    if any_over:
        handles.append(Line2D([], [], marker="x", linestyle="none", color="#555555",
                              label="predicted over the budget"))
    ax.set_xlabel("evaluation index (order of evaluation)")
    ax.set_ylabel("accuracy proxy: held-out top-1")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    _legend_right(ax, handles)
    return to_png(fig)


@dataclass(frozen=True)
class BlockRow:
    """One block of the chosen policy and its sensitivity; None where the record is missing."""

    name: str
    width: int | None = None
    full_width: int | None = None
    precision: str | None = None
    relative: float | None = None


def _policy_panel(ax, blocks: Sequence[BlockRow]) -> None:
    x = np.arange(len(blocks))
    for i, b in enumerate(blocks):
        if b.width == 0:
            ax.bar(i, 1.0, color="none", edgecolor=BUDGET_COLOUR, hatch="///", linewidth=1.0)
            ax.text(i, 0.5, "removed", rotation=90, ha="center", va="center", fontsize=9, color=BUDGET_COLOUR,
                    fontweight="bold", bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
            continue
        fraction = b.width / b.full_width if b.full_width else 1.0
        ax.bar(i, fraction, color=precision_colour(b.precision), width=0.75)
        ax.text(i, fraction + 0.02, f"{b.width}/{b.full_width if b.full_width else '?'}", ha="center",
                va="bottom", fontsize=8)
    precisions = list(dict.fromkeys(b.precision for b in blocks if b.width))
    handles = [Patch(color=precision_colour(p), label=text(p)) for p in precisions]
    if any(b.width == 0 for b in blocks):
        handles.append(Patch(facecolor="none", edgecolor=BUDGET_COLOUR, hatch="///", label="removed (width 0)"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9, title="precision")
    ax.set_ylim(0, 1.18)
    ax.set_xticks(x)
    ax.set_ylabel("inner width\n(fraction of full)")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.grid(axis="y", alpha=0.3)


def _sensitivity_panel(ax, blocks: Sequence[BlockRow]) -> None:
    values = [b.relative if b.relative is not None else np.nan for b in blocks]
    ax.bar(np.arange(len(blocks)), values, color="#6b7280", width=0.75)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("Fisher sensitivity\n(relative to max)")
    ax.grid(axis="y", alpha=0.3)


def policy_figure(blocks: Sequence[BlockRow]) -> bytes:
    """Per block: the policy's width fraction coloured by precision (if any) above the Fisher sensitivity."""
    panels = [p for p, present in ((_policy_panel, any(b.width is not None for b in blocks)),
                                   (_sensitivity_panel, any(b.relative is not None for b in blocks))) if present]
    fig = new_figure(max(8.0, 0.55 * len(blocks) + 3), 2.6 * len(panels) + 1.0)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, panel in zip(axes, panels):
        panel(ax, blocks)
    axes[-1].set_xticks(np.arange(len(blocks)))
    axes[-1].set_xticklabels([text(b.name) for b in blocks], rotation=45 if len(blocks) > 8 else 0,
                             ha="right" if len(blocks) > 8 else "center", fontsize=9)
    axes[-1].set_xlabel("block")
    return to_png(fig)


@dataclass(frozen=True)
class Timed:
    """An engine both predicted and measured (ms); ``low``/``high`` are the measured error bar's ends."""

    label: str
    predicted_ms: float
    measured_ms: float
    low: float
    high: float


def _identity(ax, values: Sequence[float]) -> None:
    low, high = min(values), max(values)
    pad = 0.08 * (high - low or high or 1.0)
    ends = [low - pad, high + pad]
    ax.plot(ends, ends, color="#888888", linewidth=1, linestyle=":", label="y = x (prediction exact)")
    ax.set_xlim(ends)
    ax.set_ylim(ends)


def latency_check_figure(finalists: Sequence[Timed], final: Timed | None, budget_ms: float | None) -> bytes:
    """Predicted vs measured latency of the finalists and of the exported engine, with y = x."""
    fig = new_figure(7.6, 6.2)
    ax = fig.add_subplot()
    groups = [(finalists, "o", "C0", "finalists: median of burst medians (bar: ± half the inter-quartile range)",
               1)]
    if final:
        # Labelled on the left: the exported policy is one of the finalists, at the same predicted latency.
        groups.append(([final], "D", "C3", "exported engine: median over processes (bar: min–max)", -1))
    values = []
    for engines, marker, colour, label, side in groups:
        if not engines:
            continue
        ax.errorbar([e.predicted_ms for e in engines], [e.measured_ms for e in engines],
                    yerr=[[e.measured_ms - e.low for e in engines], [e.high - e.measured_ms for e in engines]],
                    fmt=marker, color=colour, markersize=7, capsize=4, label=label, zorder=3)
        for e in engines:
            ax.annotate(text(e.label), (e.predicted_ms, e.measured_ms), xytext=(8 * side, -3),
                        textcoords="offset points", fontsize=9, ha="left" if side > 0 else "right")
        values += [v for e in engines for v in (e.predicted_ms, e.low, e.high)]
    if budget_ms is not None:
        values.append(budget_ms)
        ax.axhline(budget_ms, color=BUDGET_COLOUR, linestyle="--", linewidth=1.2,
                   label=f"budget {budget_ms:.4f} ms (measured)")
    if values:
        _identity(ax, values)
    return _predicted_vs_measured_png(fig, ax, "predicted latency, ms (calibrated table × drift)",
                                      "measured latency, ms")


def _predicted_vs_measured_png(fig, ax, xlabel: str, ylabel: str) -> bytes:
    """Finish a predicted-vs-measured scatter (square, so y = x is the diagonal) and render it."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_aspect("equal", adjustable="box")
    ax.grid(alpha=0.3)
    _legend_below(ax)
    return to_png(fig)


def _legend_below(ax) -> None:
    # Below the axes: inside, it would hide error bars that reach the corner.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize=9, ncols=1, frameon=False)


def _width_columns(table: LatencyTable) -> list[float]:
    return sorted({round(w / b.full_width, 2) for b in table.blocks for w in b.widths})


def _heat_matrix(table: LatencyTable, precision: str, columns: list[float]) -> np.ndarray:
    matrix = np.full((len(table.blocks), len(columns)), np.nan)
    for row, block in enumerate(table.blocks):
        for w, value in zip(block.widths, block.latency_ms.get(precision, [])):
            matrix[row, columns.index(round(w / block.full_width, 2))] = value
    return matrix


def _annotate_cells(ax, matrix: np.ndarray, image) -> None:
    for (row, col), value in np.ndenumerate(matrix):
        if not np.isnan(value):
            dark = sum(image.cmap(image.norm(value))[:3]) < 1.5
            ax.text(col, row, f"{value:.3f}", ha="center", va="center", fontsize=7.5,
                    color="white" if dark else "black")


def table_heatmap_figure(table: LatencyTable) -> bytes:
    """The latency table as block × width-fraction heat maps, one panel per precision, on one colour scale."""
    columns = _width_columns(table)
    precisions = table.precisions
    matrices = [_heat_matrix(table, p, columns) for p in precisions]
    finite = np.concatenate([m[np.isfinite(m)] for m in matrices] + [np.zeros(1)])
    vmin, vmax = float(finite.min()), float(finite.max())
    fig = new_figure(1.2 + (1.1 * len(columns) + 1.6) * len(precisions), 1.4 + 0.36 * len(table.blocks))
    axes = fig.subplots(1, len(precisions), sharey=True, squeeze=False)[0]
    image = None
    for ax, precision, matrix in zip(axes, precisions, matrices):
        image = ax.imshow(matrix, cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto")
        if matrix.size <= MAX_ANNOTATED_CELLS:
            _annotate_cells(ax, matrix, image)
        ax.set_title(text(precision))
        ax.set_xticks(range(len(columns)))
        ax.set_xticklabels(["0\n(removed)" if c == 0 else f"{c:g}" for c in columns], fontsize=9)
        ax.set_xlabel("inner width (fraction of full)")
    axes[0].set_yticks(range(len(table.blocks)))
    axes[0].set_yticklabels([f"{text(b.name)} ({b.full_width})" for b in table.blocks], fontsize=9)
    if image is not None:
        fig.colorbar(image, ax=list(axes), label="block latency, ms", shrink=0.9)
    return to_png(fig)


def precision_mix(widths: Sequence[int], precisions: Sequence[str]) -> str:
    """"all fp32", "all int8" (any single precision) or "mixed", over the blocks that are kept."""
    kept = {p for w, p in zip(widths, precisions) if w != 0} or {Precision.FP32}
    return f"all {next(iter(kept))}" if len(kept) == 1 else "mixed"


def validation_figure(rows: Sequence[dict]) -> bytes:
    """Predicted vs measured latency of the validation engines, coloured by precision mix, with y = x."""
    fig = new_figure(7.6, 6.2)
    ax = fig.add_subplot()
    mixes = [precision_mix(r["widths"], r["precisions"]) for r in rows]
    for mix in dict.fromkeys(mixes):
        mine = [r for r, m in zip(rows, mixes) if m == mix]
        colour = MIXED_COLOUR if mix == "mixed" else precision_colour(mix.removeprefix("all "))
        ax.errorbar([r["predicted_ms"] for r in mine], [r["measured_ms"] for r in mine],
                    yerr=[r["measured_spread_ms"] / 2 for r in mine], fmt="o", color=colour, markersize=7,
                    capsize=4, label=f"{text(mix)} ({len(mine)})", zorder=3)
    for r in rows:
        ax.annotate(text(r.get("label", "")), (r["predicted_ms"], r["measured_ms"]), xytext=(7, -3),
                    textcoords="offset points", fontsize=8.5)
    values = [v for r in rows for v in (r["predicted_ms"], r["measured_ms"] + r["measured_spread_ms"] / 2,
                                        r["measured_ms"] - r["measured_spread_ms"] / 2)]
    if values:
        _identity(ax, values)
        ends = np.array(ax.get_xlim())
        ax.fill_between(ends, ends * 0.95, ends * 1.05, color="#999999", alpha=0.15, label="±5% of predicted")
    return _predicted_vs_measured_png(fig, ax, "predicted latency, ms (table)",
                                      "measured latency, ms (bar: ± half the IQR of burst medians)")


@dataclass(frozen=True)
class LoopPoint:
    """One finalist of the closed loop on the budget: its round and measured latency over the budget then."""

    round: int
    label: str
    ratio: float
    chosen: bool


def loop_figure(points: Sequence[LoopPoint]) -> bytes:
    """The closed loop on the budget: each round's finalists, measured latency relative to the budget."""
    fig = new_figure(7.6, 4.2)
    ax = fig.add_subplot()
    for met in (True, False):
        group = [p for p in points if (p.ratio <= 1.0) == met]
        ax.scatter([p.round for p in group], [p.ratio for p in group], s=45, zorder=3,
                   color="C2" if met else BUDGET_COLOUR, label="meets the budget" if met else "misses the budget")
    for p in points:
        ax.annotate(text(p.label + (" (exported)" if p.chosen else "")), (p.round, p.ratio), xytext=(7, -3),
                    textcoords="offset points", fontsize=8)
    ax.axhline(1.0, color=BUDGET_COLOUR, linestyle="--", linewidth=1.2, label="budget")
    ax.set_xticks(sorted({p.round for p in points}))
    ax.set_xlabel("closed-loop round (after round 0 the table is corrected by what was measured)")
    ax.set_ylabel("measured latency / budget")
    _legend_right(ax)
    return to_png(fig)


def processes_figure(engine_ms: Sequence[float], uncompressed_ms: Sequence[float], fast: Sequence[bool]) -> bytes:
    """The exported engine and the uncompressed model in each fresh process, fast and slow states marked."""
    fig = new_figure(7.6, 3.8)
    ax = fig.add_subplot()
    x = np.arange(1, len(engine_ms) + 1)
    ax.plot(x, uncompressed_ms, "s-", color=PRECISION_COLOURS[Precision.FP32], label="uncompressed (FP32)")
    ax.plot(x, engine_ms, "-", color="#999999", zorder=1)
    for state, marker, label in ((True, "o", "engine, fast state"), (False, "X", "engine, slow state")):
        group = [i for i, f in enumerate(fast) if f == state]
        ax.scatter(x[group], [engine_ms[i] for i in group], marker=marker, s=55, zorder=3,
                   color="C2" if state else BUDGET_COLOUR, label=label)
    ax.set_xticks(x)
    ax.set_xlabel("fresh process")
    ax.set_ylabel("median latency, ms")
    _legend_right(ax)
    return to_png(fig)
