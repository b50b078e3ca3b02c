"""Charts of the marts for the Dagster UI, computed in SQL from the staged table.

Each chart comes twice, as markdown metadata. The UI shows a markdown value inline only when it
is shorter than 1,000 characters, else behind "[Show Markdown]". So `<name>` is a text chart in a
code block, read at a glance on the asset page; `<name>_chart` is the same data as an SVG picture
(a data: image, which the UI's markdown renders), one click away.
"""

import base64
from collections.abc import Sequence
from decimal import Decimal
from html import escape

import dagster as dg
import duckdb

from bike_assets import rules

NO_ORDERS = "No orders"  # ltv_segment is null for a customer without orders
EIGHTHS = ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")  # partial blocks of a text bar
FONT = 'font-family="Helvetica, Arial, sans-serif"'
INK, MUTED, BLUE = "#1f2937", "#6b7280", "#2563eb"
COLORS = {
    "VIP": "#7c3aed",
    "Loyal": "#2563eb",
    "Regular": "#0891b2",
    "New": "#9ca3af",
    "Platinum": "#475569",
    "Gold": "#d97706",
    "Silver": "#94a3b8",
    "Bronze": "#b45309",
    NO_ORDERS: "#d1d5db",
}

Counts = Sequence[tuple[str, int]]
Grid = dict[tuple[str, str], tuple[int, Decimal]]  # (region, tier) -> (customers, avg LTV)


def customers_enriched_charts(
    conn: duckdb.DuckDBPyConnection, relation: str
) -> dict[str, dg.MetadataValue]:
    """The segment mix: customers per customer_segment and per LTV tier, as bars."""
    segments = _counts(conn, relation, "customer_segment", rules.CUSTOMER_SEGMENTS)
    tiers = _counts(
        conn, relation, f"coalesce(ltv_segment, '{NO_ORDERS}')", (*rules.LTV_SEGMENTS, NO_ORDERS)
    )
    total = sum(n for _, n in segments)
    title = f"Segment mix of {total:,} customers"
    text = [title, "", *_text_bars("Customer segment", segments, total)]
    text += ["", *_text_bars("LTV tier", tiers, total)]
    svg = [
        _svg_text(20, 30, title, size=17, weight="bold"),
        *_svg_bars("Customer segment", segments, total, x=20, y=62),
        *_svg_bars("LTV tier", tiers, total, x=390, y=62),
    ]
    height = 62 + 14 + 30 * max(len(segments), len(tiers)) + 20
    return {
        "segment_mix": _code_block(text),
        "segment_mix_chart": _picture(title, 760, height, svg),
    }


def region_segment_summary_charts(
    conn: duckdb.DuckDBPyConnection, relation: str
) -> dict[str, dg.MetadataValue]:
    """The region x LTV tier grid: customers and average LTV in each cell."""
    grid: Grid = {
        (region, tier): (customers, avg_ltv)
        for region, tier, customers, avg_ltv in conn.execute(
            f"select region, customer_segment, num_customers, avg_ltv from {relation}"
        ).fetchall()
    }
    regions = [r for r in rules.CENSUS_REGIONS if any(key[0] == r for key in grid)]
    title = "Customers with orders by region and LTV tier"
    return {
        "region_tier_grid": _code_block([title, "", *_text_grid(grid, regions)]),
        "region_tier_chart": _picture(title, *_svg_grid(title, grid, regions)),
    }


def _counts(
    conn: duckdb.DuckDBPyConnection, relation: str, expression: str, order: Sequence[str]
) -> list[tuple[str, int]]:
    """Rows per value of expression, in the given order (a value with no row counts 0)."""
    found = dict(
        conn.execute(f"select {expression}, count(*) from {relation} group by 1").fetchall()
    )
    return [(value, found.get(value, 0)) for value in order]


# --- Text charts (inline on the asset page) ---------------------------------------------------


def _code_block(lines: Sequence[str]) -> dg.MetadataValue:
    return dg.MetadataValue.md("```\n" + "\n".join(lines) + "\n```")


def _text_bar(n: int, most: int, width: int) -> str:
    """A bar of n on a scale where `most` is `width` characters, in eighths of a character."""
    eighths = max(1, round(8 * width * n / most)) if n else 0
    return "█" * (eighths // 8) + EIGHTHS[eighths % 8]


def _text_bars(title: str, counts: Counts, total: int, width: int = 16) -> list[str]:
    most = max(n for _, n in counts) or 1
    return [title] + [
        f"{label:<10}{_text_bar(n, most, width):<{width}} {n:>7,} {_share(n, total):>4}"
        for label, n in counts
    ]


def _text_grid(grid: Grid, regions: Sequence[str]) -> list[str]:
    """Two tables, regions x tiers: customers (with a bar) and average LTV; '-' is no customer."""
    most = max((customers for customers, _ in grid.values()), default=1)
    header = "".join(f"{tier:>8}" for tier in rules.LTV_SEGMENTS)  # 42 characters wide
    customers, avg_ltv = ["Customers " + header], ["Avg LTV   " + header]
    for region in regions:
        cells = [grid.get((region, tier)) for tier in rules.LTV_SEGMENTS]
        customers.append(
            f"{region:<10}"
            + "".join(
                f" {_text_bar(c[0], most, 2):<2}{c[0]:>5}" if c else f"{'-':>8}" for c in cells
            )
        )
        avg_ltv.append(
            f"{region:<10}" + "".join(f"{f'${c[1]:,.0f}' if c else '-':>8}" for c in cells)
        )
    return [*customers, "", *avg_ltv]


def _share(n: int, total: int) -> str:
    return f"{100 * n / total:.0f}%" if total else "-"


# --- SVG pictures (behind "[Show Markdown]") --------------------------------------------------


def _svg_bars(title: str, counts: Counts, total: int, *, x: float, y: float) -> list[str]:
    """A titled horizontal bar chart: one bar per value, labelled with its count and share."""
    label_w, bar_w, row_h = 90, 160, 30
    most = max(n for _, n in counts) or 1
    parts = [_svg_text(x, y, title, size=14, weight="bold")]
    for i, (label, n) in enumerate(counts):
        top = y + 14 + i * row_h
        length = bar_w * n / most
        parts += [
            _svg_text(x, top + 19, label, size=13),
            f'<rect x="{x + label_w}" y="{top + 4}" width="{length:.1f}" height="{row_h - 8}" '
            f'rx="3" fill="{COLORS[label]}"/>',
            _svg_text(x + label_w + length + 6, top + 19, f"{n:,} ({_share(n, total)})", size=12),
        ]
    return parts


def _svg_grid(title: str, grid: Grid, regions: Sequence[str]) -> tuple[int, int, list[str]]:
    """A heat grid: rows are regions, columns tiers, the shade is the number of customers."""
    left, top, cell_w, cell_h = 120, 92, 150, 56
    most = max((customers for customers, _ in grid.values()), default=1)
    parts = [
        _svg_text(20, 30, title, size=17, weight="bold"),
        _svg_text(
            20, 52, "Shade: number of customers. Below it: average LTV.", size=12, fill=MUTED
        ),
    ]
    for col, tier in enumerate(rules.LTV_SEGMENTS):
        x = left + col * cell_w + cell_w / 2
        parts.append(_svg_text(x, top - 10, tier, size=13, weight="bold", anchor="middle"))
    for row, region in enumerate(regions):
        y = top + row * cell_h
        parts.append(_svg_text(20, y + cell_h / 2 + 5, region, size=13, weight="bold"))
        for col, tier in enumerate(rules.LTV_SEGMENTS):
            parts += _svg_cell(
                left + col * cell_w, y, cell_w, cell_h, grid.get((region, tier)), most
            )
    return left + cell_w * len(rules.LTV_SEGMENTS) + 20, top + cell_h * len(regions) + 20, parts


def _svg_cell(
    x: float, y: float, w: float, h: float, value: tuple[int, Decimal] | None, most: int
) -> list[str]:
    """One grid cell: shaded by its customers, with the count and the average LTV."""
    box = f'x="{x + 2}" y="{y + 2}" width="{w - 4}" height="{h - 4}" rx="4"'
    if value is None:
        return [
            f'<rect {box} fill="#f3f4f6"/>',
            _svg_text(x + w / 2, y + h / 2 + 5, "none", size=12, fill=MUTED, anchor="middle"),
        ]
    customers, avg_ltv = value
    opacity = 0.1 + 0.8 * customers / most
    ink = "#ffffff" if opacity > 0.5 else INK
    return [
        f'<rect {box} fill="{BLUE}" fill-opacity="{opacity:.2f}"/>',
        _svg_text(
            x + w / 2, y + 24, f"{customers:,}", size=16, weight="bold", fill=ink, anchor="middle"
        ),
        _svg_text(x + w / 2, y + 43, f"avg ${avg_ltv:,.0f}", size=12, fill=ink, anchor="middle"),
    ]


def _svg_text(
    x: float,
    y: float,
    content: str,
    *,
    size: int,
    weight: str = "normal",
    fill: str = INK,
    anchor: str = "start",
) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" {FONT} font-size="{size}" font-weight="{weight}" '
        f'fill="{fill}" text-anchor="{anchor}">{escape(content)}</text>'
    )


def _picture(alt: str, width: int, height: int, body: Sequence[str]) -> dg.MetadataValue:
    """Markdown showing the SVG as an image (a base64 data: URI)."""
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">'
        f'<rect width="100%" height="100%" rx="6" fill="#ffffff"/>{"".join(body)}</svg>'
    )
    encoded = base64.b64encode(svg.encode()).decode()
    return dg.MetadataValue.md(f"![{escape(alt)}](data:image/svg+xml;base64,{encoded})")
