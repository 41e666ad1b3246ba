"""The report's charts, drawn by matplotlib and inlined as SVG (text kept as text, links kept).

Bars and points that stand for a query carry a link (`#q-N`) to that query's section: matplotlib's
SVG backend writes an artist's url as an `<a>` around it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from rearank_cli.errors import require

WIN, LOSS, TIE = "#2e7d32", "#c62828", "#9e9e9e"
COLORS = ("#1565c0", "#ef6c00", "#6a1b9a", "#00838f", "#ad1457", "#558b2f")


def _figure(width: float, height: float) -> Any:
    require("matplotlib", "report")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=96, layout="constrained")


def to_svg(figure: Any, name: str) -> str:
    """The figure as an inline `<svg>` element (no XML prolog; ids salted by `name`, so several
    charts on one page never share a clip-path id)."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": f"rearank-{name}"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    # matplotlib opens links in a new window; on this page they open a query section in place
    return text[text.index("<svg") :].replace(' target="_blank"', "")


def delta_chart(labels: Sequence[str], deltas: Sequence[float], anchors: Sequence[str], measure: str,
                name: str) -> str:
    """Per-query deltas against the baseline, sorted, one linked bar per query."""
    figure = _figure(max(6.0, min(14.0, 0.16 * len(deltas) + 2.0)), 2.8)
    axes = figure.add_subplot()
    order = sorted(range(len(deltas)), key=lambda i: (deltas[i], labels[i]))
    values = [deltas[i] for i in order]
    colors = [WIN if v > 1e-12 else LOSS if v < -1e-12 else TIE for v in values]
    bars = axes.bar(range(len(values)), values, color=colors, width=0.8)
    for bar, i in zip(bars, order, strict=True):
        bar.set_url(f"#{anchors[i]}")
    axes.axhline(0, color="#424242", linewidth=0.8)
    axes.set_ylabel(f"Δ {measure}")
    axes.set_xlabel("queries, sorted by Δ (click a bar to open the query)")
    axes.set_xticks(range(len(values)), [labels[i] for i in order], rotation=90, fontsize=6)
    axes.set_xlim(-0.6, len(values) - 0.4)
    axes.grid(axis="y", alpha=0.3)
    return to_svg(figure, name)


def scatter_chart(series: Sequence[tuple[str, Sequence[float], Sequence[float], Sequence[str]]], measure: str,
                  name: str) -> str:
    """Baseline vs reranked value per query, one colour per run; points link to their query."""
    figure = _figure(4.4, 4.2)
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], color="#9e9e9e", linewidth=0.8, linestyle="--")
    for number, (run, base, mine, anchors) in enumerate(series):
        points = axes.scatter(base, mine, s=18, alpha=0.75, color=COLORS[number % len(COLORS)], label=run)
        points.set_urls([f"#{anchor}" for anchor in anchors])
    axes.set_xlabel(f"baseline {measure}")
    axes.set_ylabel(f"reranked {measure}")
    axes.set_xlim(-0.02, 1.02)
    axes.set_ylim(-0.02, 1.02)
    axes.set_aspect("equal")
    if len(series) > 1:
        axes.legend(fontsize=7, loc="lower right")
    return to_svg(figure, name)


def histogram(series: Sequence[tuple[str, Sequence[float]]], xlabel: str, name: str) -> str:
    """Overlaid histograms, one per run."""
    figure = _figure(4.0, 2.6)
    axes = figure.add_subplot()
    for number, (run, values) in enumerate(series):
        if values:
            axes.hist(values, bins=min(30, max(5, len(set(values)))), alpha=0.6, label=run,
                      color=COLORS[number % len(COLORS)])
    axes.set_xlabel(xlabel)
    axes.set_ylabel("windows")
    if len(series) > 1:
        axes.legend(fontsize=7)
    return to_svg(figure, name)


def tokens_delta_chart(series: Sequence[tuple[str, Sequence[tuple[int, float]]]], name: str) -> str:
    """Completion tokens of each window against the nDCG@10 change it caused."""
    figure = _figure(4.0, 2.6)
    axes = figure.add_subplot()
    for number, (run, points) in enumerate(series):
        if points:
            axes.scatter([t for t, _ in points], [d for _, d in points], s=10, alpha=0.6, label=run,
                         color=COLORS[number % len(COLORS)])
    axes.axhline(0, color="#424242", linewidth=0.8)
    axes.set_xlabel("completion tokens of the window")
    axes.set_ylabel("window Δ nDCG@10")
    if len(series) > 1:
        axes.legend(fontsize=7)
    return to_svg(figure, name)
