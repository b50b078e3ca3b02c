"""Small PNG charts for the Dagster UI, drawn with matplotlib from plain Python data.

Each function returns a `dg.MetadataValue.md` holding `![title](data:image/png;base64,...)`: a
6 x 3 inch picture at 100 dpi (600 x 300 pixels; 0.3 inch taller per bar past 6 bars), in 64
colours: about 10-15 kB of markdown (25 kB for 20 bars). matplotlib is imported inside the
functions, with its Agg (file-only) canvas, so that importing this module stays cheap for the
code location.
"""

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

WIDTH_INCHES, HEIGHT_INCHES, DPI = 6.0, 3.0, 100
BAR_COLOR = "#2563eb"
VALUE_AXIS = "Customers"


def segment_mix_chart(
    title: str, counts: Mapping[str, int], order: Sequence[str]
) -> dg.MetadataValue:
    """Horizontal bars of customers per category, each labelled "count (share %)".

    counts: category -> number of customers; order: the categories to show, top to bottom (one
    missing from counts is drawn as 0; a category not in order is left out). The share is of the
    sum of the bars shown, rounded to a whole percent.
    """
    values = [counts.get(category, 0) for category in order]
    total = sum(values)
    labels = [f"{n:,} ({_percent(n, total)})" for n in values]
    fig, ax = _figure(len(order))
    bars = ax.barh(list(order), values, color=BAR_COLOR)
    _finish_bars(ax, bars, labels, max(values, default=0), title, "Category")
    return _markdown(fig, title)


def region_tier_chart(
    title: str,
    cells: Sequence[tuple[str, str, int]],
    regions: Sequence[str],
    tiers: Sequence[str],
) -> dg.MetadataValue:
    """A heatmap of customers per (region, tier), the number written in each cell.

    cells: (region, tier, customers) rows; regions are drawn top to bottom and tiers left to
    right in the order given. A pair with no row shows 0; rows of the same pair add up; a row
    whose region or tier is not listed is left out.
    """
    grid = Counter[tuple[str, str]]()
    for region, tier, customers in cells:
        grid[region, tier] += customers
    values = [[grid[region, tier] for tier in tiers] for region in regions]
    most = max((max(row, default=0) for row in values), default=0)

    fig, ax = _figure(len(regions))
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=most or 1, aspect="auto")
    for row, line in enumerate(values):
        for col, n in enumerate(line):
            ink = "white" if most and n > most / 2 else "#1f2937"
            ax.text(col, row, f"{n:,}", ha="center", va="center", color=ink, fontsize=10)
    ax.set_xticks(range(len(tiers)), list(tiers))
    ax.set_yticks(range(len(regions)), list(regions))
    ax.set_xlabel("LTV tier")
    ax.set_ylabel("Region")
    ax.set_title(title, fontsize=11, fontweight="bold")
    fig.colorbar(image, ax=ax, label=VALUE_AXIS)
    return _markdown(fig, title)


def moves_chart(title: str, moves: Sequence[tuple[str, str, int]]) -> dg.MetadataValue:
    """Horizontal bars of customers per move, one bar per (from, to, customers) row, in order.

    Each bar is named "from -> to" and labelled with its count. With no moves, the markdown is a
    sentence saying so (no picture).
    """
    if not moves:
        return dg.MetadataValue.md(f"**{title}**\n\nNo moves: no customer changed category.")
    names = [f"{before} -> {after}" for before, after, _ in moves]
    values = [n for _, _, n in moves]
    fig, ax = _figure(len(moves))
    bars = ax.barh(names, values, color=BAR_COLOR)
    _finish_bars(ax, bars, [f"{n:,}" for n in values], max(values), title, "Move")
    return _markdown(fig, title)


def _percent(n: int, total: int) -> str:
    return f"{100 * n / total:.0f}%" if total else "-"


def _figure(rows: int) -> tuple[Any, Any]:
    """A new figure and its axes on the Agg canvas: 3 inches high, +0.3 inch a row past 6 rows."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    height = HEIGHT_INCHES + 0.3 * max(0, rows - 6)
    fig = Figure(figsize=(WIDTH_INCHES, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _finish_bars(ax: Any, bars: Any, labels: list[str], most: int, title: str, axis: str) -> None:
    """First category on top, each bar's label at its end, room on the right for the labels."""
    ax.invert_yaxis()
    ax.bar_label(bars, labels, padding=3, fontsize=9)
    ax.set_xlim(0, (most or 1) * 1.3)
    ax.set_xlabel(VALUE_AXIS)
    ax.set_ylabel(axis)
    ax.set_title(title, fontsize=11, fontweight="bold")
    ax.spines[["top", "right"]].set_visible(False)


def _markdown(fig: Any, title: str) -> dg.MetadataValue:
    """The figure as a PNG data URI in markdown, the title as its alt text."""
    import base64
    import io

    from PIL import Image

    drawn, buffer = io.BytesIO(), io.BytesIO()
    fig.savefig(drawn, format="png", dpi=DPI, metadata={"Software": None})
    # 64 colours are plenty for flat bars and anti-aliased text, and a third of the bytes.
    picture = Image.open(drawn).convert("RGB").quantize(colors=64)
    picture.save(buffer, format="png", optimize=True)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    alt = title.replace("[", "(").replace("]", ")")
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{encoded})")
