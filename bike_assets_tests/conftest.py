"""Shared test helpers: tiny hand-made exports, and running the jobs into a temporary DuckDB."""

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from bike_assets.definitions import defs
from bike_assets.defs.schedules import as_of_run_config
from bike_assets.lib.checks import Check
from bike_assets.lib.warehouse import query_rows

HEADERS = {
    "customers.csv": "customer_id,first_name,last_name,phone,email,street,city,state,zip_code",
    "stores.csv": "store_id,store_name,phone,email,street,city,state,zip_code",
    "orders.csv": "order_id,customer_id,order_status,order_date,required_date,shipped_date,"
    "store_id,staff_id",
    "order_items.csv": "order_id,item_id,product_id,quantity,list_price,discount",
}

# A tiny export whose every figure is computed by hand in the tests that use it.
TINY_EXPORT = {
    "customers.csv": [
        '1,Debra,Burks,NULL,Debra.Burks@Yahoo.com ,"9273 Thorne Ave. ",Orchard Park,NY,14127',
        '2,Daryl,Spence,(916) 381-6003,daryl.spence@aol.com,"988 Pearl Lane ",Uniondale,ny,11553',
        "3,Zyx,Quenby,NULL,zyx@msn.com,1 Main St,Houston,TX,07001",
    ],
    "stores.csv": [
        "1,Santa Cruz Bikes,(831) 476-4321,santacruz@bikes.shop,3700 Portola Drive,"
        "Santa Cruz,CA,95060",
        "2,Baldwin Bikes,(516) 379-8888,baldwin@bikes.shop,4200 Chestnut Lane,Baldwin,NY,11432",
    ],
    "orders.csv": [
        "1,1,4,2024-01-01,2024-01-03,2024-01-02,1,2",
        "2,1,4,2024-02-01,2024-02-03,2024-02-05,2,6",
        "3,2,1,2024-03-01,2024-03-03,NULL,2,6",
    ],
    "order_items.csv": [
        "1,1,10,1,0.15,0.10",  # 0.135 -> 0.14 once per order (0.135 + 0.135 = 0.27 exactly)
        "1,2,11,1,0.15,0.10",
        "2,1,12,2,100.00,0.05",  # 190.00
        "3,1,13,1,599.99,0.20",  # 479.992 -> 479.99
    ],
}


# Every table a run publishes, typed by hand from the spec (schema.table, sorted).
PUBLISHED_TABLES = [
    "intermediate.orders_enriched",
    "marts.customer_segment_history",
    "marts.customers_enriched",
    "marts.region_segment_summary",
    "staging.rejected_rows",
    "staging.stg_customers",
    "staging.stg_order_items",
    "staging.stg_orders",
    "staging.stg_stores",
]


def write_export(folder: Path, files: dict[str, Sequence[str]]) -> Path:
    """Write a BikeStores-format export (header + rows, LF) into folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in files.items():
        (folder / name).write_text("\n".join([HEADERS[name], *rows]) + "\n", encoding="utf-8")
    return folder


@dataclass
class Pipeline:
    """The code location pointed at a temporary warehouse and export, through the BIKE_*
    environment variables (as a user configures it)."""

    warehouse: Path
    raw_dir: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def environment(self) -> dict[str, str]:
        return {
            "BIKE_DUCKDB_PATH": str(self.warehouse),
            "BIKE_RAW_DIR": str(self.raw_dir),
            "BIKE_PII_KEY": "test-key",
            "BIKE_LOCK_TIMEOUT_SECONDS": "2",
            **self.env,
        }

    def definitions(self) -> dg.Definitions:
        """The code location as loaded with this pipeline's environment."""
        with environment(self.environment):
            return defs()

    def run(
        self, job: str = "daily_refresh", as_of: str | None = "2024-12-31", **kwargs
    ) -> dg.ExecuteInProcessResult:
        """Execute a job in process (its run fails rather than raise)."""
        config = as_of_run_config(as_of) if job == "daily_refresh" and as_of else {}
        with environment(self.environment):
            return (
                defs()
                .resolve_job_def(job)
                .execute_in_process(run_config=config, raise_on_error=False, **kwargs)
            )

    def with_raw_dir(self, raw_dir: Path) -> "Pipeline":
        return replace(self, raw_dir=raw_dir)

    def with_env(self, **env: str) -> "Pipeline":
        return replace(self, env={**self.env, **env})

    def table(self, name: str) -> pd.DataFrame:
        with duckdb.connect(str(self.warehouse), read_only=True) as conn:
            return conn.execute(f"select * from {name}").fetchdf()

    def tables(self) -> dict[str, pd.DataFrame]:
        with duckdb.connect(str(self.warehouse), read_only=True) as conn:
            names = conn.execute(
                "select table_schema || '.' || table_name from information_schema.tables order by 1"
            ).fetchall()
            return {name: conn.execute(f"select * from {name}").fetchdf() for (name,) in names}


@contextmanager
def environment(variables: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration (restored after)."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def tiny_pipeline(tmp_path: Path) -> Pipeline:
    return Pipeline(tmp_path / "warehouse.duckdb", write_export(tmp_path / "raw", TINY_EXPORT))


@pytest.fixture(scope="module")
def tiny_published(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    """A warehouse after a good run on TINY_EXPORT, one per test module (tests that run again
    work on a copy of it)."""
    folder = tmp_path_factory.mktemp("tiny_published")
    pipeline = Pipeline(folder / "warehouse.duckdb", write_export(folder / "raw", TINY_EXPORT))
    assert pipeline.run().success
    return pipeline


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    """Each check's evaluation in a run, by check name (asset/check)."""
    return {
        f"{e.asset_key.path[-1]}/{e.check_name}": e for e in result.get_asset_check_evaluations()
    }


def query(pipeline: Pipeline, sql: str) -> list[dict[str, object]]:
    """Rows of a query on the pipeline's warehouse, with DuckDB's Python values (Decimal, date)."""
    with duckdb.connect(str(pipeline.warehouse), read_only=True) as conn:
        cursor = conn.execute(sql)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def evaluate_check(
    check: Check, conn: duckdb.DuckDBPyConnection, asset_key: dg.AssetKey, this: str
) -> dg.AssetCheckResult:
    """Run a check on table `this` (schema.table) of a DuckDB connection, as a run does."""
    return check.evaluate(lambda sql, limit: query_rows(conn, sql, limit), asset_key, this)


def sample_rows(metadata: dict[str, dg.MetadataValue]) -> list[dict[str, str]]:
    """The rows of a check's `sample` markdown table, as column -> cell text (a null is '')."""
    lines = metadata["sample"].value.splitlines()
    if len(lines) < 2:  # "none": no failing row
        return []
    columns = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [
        dict(zip(columns, (cell.strip() for cell in line.strip("|").split("|")), strict=True))
        for line in lines[2:]
    ]


def published_tables(pipeline: Pipeline) -> dict[str, pd.DataFrame]:
    """Every published table, its rows in a fixed order (order by all columns).

    A reader sees only this file: a run's candidate version lives in a file of its own.
    """
    with duckdb.connect(str(pipeline.warehouse), read_only=True) as conn:
        names = conn.execute(
            "select table_schema || '.' || table_name from information_schema.tables order by 1"
        ).fetchall()
        return {
            name: conn.execute(f"select * from {name} order by all").fetchdf() for (name,) in names
        }


def assert_tables_equal(actual: dict[str, pd.DataFrame], expected: dict[str, pd.DataFrame]) -> None:
    """The same tables, with the same columns, types and rows."""
    assert sorted(actual) == sorted(expected)
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(actual[name], frame, obj=name)
