"""Tests of the PNG charts: a real PNG in a data URI, matplotlib imported only when drawing."""

import base64
import re
import subprocess
import sys

import dagster as dg

from bike_assets.tools.charts import moves_chart, region_tier_chart, segment_mix_chart

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
REGIONS = ("Northeast", "Midwest", "South", "West")
TIERS = ("Platinum", "Gold", "Silver", "Bronze")


def png_of(value: dg.MetadataValue, alt: str) -> bytes:
    """The picture of a chart's markdown, which must be one image whose alt text is alt."""
    assert isinstance(value, dg.MarkdownMetadataValue)
    match = re.fullmatch(r"!\[(.*)\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", value.md_str)
    assert match, value.md_str[:80]
    assert match.group(1) == alt
    assert len(value.md_str) < 60_000
    return base64.b64decode(match.group(2), validate=True)


def test_segment_mix_chart_is_a_png() -> None:
    counts = {"VIP": 3, "Loyal": 10, "Regular": 27}  # "New" missing: drawn as 0
    chart = segment_mix_chart("Segment mix", counts, ["VIP", "Loyal", "Regular", "New"])
    assert png_of(chart, "Segment mix").startswith(PNG_SIGNATURE)


def test_region_tier_chart_is_a_png() -> None:
    cells = [("Northeast", "Gold", 12), ("South", "Bronze", 40), ("West", "Platinum", 1)]
    chart = region_tier_chart("By region [and tier]", cells, REGIONS, TIERS)
    # brackets in the title would end the alt text early: they become parentheses
    assert png_of(chart, "By region (and tier)").startswith(PNG_SIGNATURE)


def test_moves_chart_is_a_png() -> None:
    moves = [("New", "Regular", 5), ("Regular", "Loyal", 2)]
    assert png_of(moves_chart("Moves", moves), "Moves").startswith(PNG_SIGNATURE)


def test_a_png_is_600_by_300_pixels() -> None:
    png = png_of(moves_chart("Moves", [("New", "Regular", 5)]), "Moves")
    # the IHDR chunk follows the signature: length, "IHDR", width and height as 4-byte integers
    assert png[12:16] == b"IHDR"
    assert int.from_bytes(png[16:20], "big") == 6 * 100
    assert int.from_bytes(png[20:24], "big") == 3 * 100


def test_moves_chart_without_moves_says_so() -> None:
    chart = moves_chart("Segment moves", [])
    assert isinstance(chart, dg.MarkdownMetadataValue)
    assert chart.md_str == "**Segment moves**\n\nNo moves: no customer changed category."
    assert "data:image" not in chart.md_str


def test_importing_the_module_does_not_import_matplotlib() -> None:
    code = "import sys, bike_assets.tools.charts; print('matplotlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
