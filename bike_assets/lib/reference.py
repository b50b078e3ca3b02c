"""The lookups that ship with the project (bike_assets/reference/, licences in the README)."""

from pathlib import Path

import duckdb

from bike_assets.lib.sql import source

REFERENCE_DIR = Path(__file__).parent.parent / "reference"
LOOKUPS = ("us_census_regions", "first_name_genders")


def load_reference_tables(conn: duckdb.DuckDBPyConnection) -> None:
    """Working tables work.us_census_regions (state, region) and work.first_name_genders
    (first_name lower case, gender), read from the shipped CSV files (no network)."""
    for name in LOOKUPS:
        conn.execute(
            f"create or replace table {source(name)} as "
            "select * from read_csv(?, header = true, all_varchar = true)",
            [str(REFERENCE_DIR / f"{name}.csv")],
        )
