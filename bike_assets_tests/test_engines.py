"""The two engines (BIKE_ENGINE): the same asset graph on a local Spark publishes the same
tables as on DuckDB, value for value and type for type, and refuses or quarantines a bad export
the same way.

Independent route: the DuckDB engine's tables (themselves checked by hand-computed figures in
defs/, test_publication.py, ...). The Spark warehouse is read as a reader reads it: the newest
manifest under _published/ (plain JSON), then each table's folder of Parquet files (DuckDB's
read_parquet). One local Spark serves the whole test session (`spark_connect`, which also
serves Spark Connect, for the test of BIKE_SPARK_REMOTE).
"""

import functools
import json
import socket
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from bike_assets.definitions import defs
from bike_assets.tools.generate import generate_export
from bike_assets_tests.conftest import (
    PUBLISHED_TABLES,
    Pipeline,
    environment,
    write_export,
)

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "raw"
CASES = Path(__file__).parent / "cases"
MARTS = [
    dg.AssetKey(["marts", "customers_enriched"]),
    dg.AssetKey(["marts", "region_segment_summary"]),
    dg.AssetKey(["marts", "customer_segment_history"]),
]

# (column name, DuckDB type) of each column, then every row (Python values) in order.
Table = tuple[list[tuple[str, str]], list[tuple[Any, ...]]]


# --- One local Spark for the test session -------------------------------------------------------


@functools.cache
def _local_spark_serving_connect() -> str:
    """Start the test session's local Spark (as the pipeline starts it), with a Spark Connect
    server on a free port; its URL."""
    from bike_assets.lib import spark

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    spark.session(
        "",
        str(ROOT / "data" / "spark-warehouse"),
        {
            "spark.plugins": "org.apache.spark.sql.connect.SparkConnectPlugin",
            "spark.connect.grpc.binding.address": "127.0.0.1",
            "spark.connect.grpc.binding.port": str(port),
        },
    )
    return f"sc://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def spark_connect() -> str:
    """The URL of the test session's Spark Connect server (its local Spark started)."""
    return _local_spark_serving_connect()


# --- Reading both warehouses as readers do ----------------------------------------------------


def newest_manifest(warehouse: Path) -> dict[str, Any] | None:
    """The published version of a Spark warehouse: its newest manifest (None when none)."""
    manifests = [
        json.loads(part.read_text())
        for part in (warehouse / "_published").glob("*/part-*")
        if part.suffix != ".crc"
    ]
    return max(manifests, key=lambda m: m["name"]) if manifests else None


def _table(conn: duckdb.DuckDBPyConnection, relation: str) -> Table:
    columns = [
        (name, kind)
        for name, kind, *_ in conn.execute(f"describe select * from {relation}").fetchall()
    ]
    return columns, conn.execute(f"select * from {relation} order by all").fetchall()


def duckdb_tables(pipeline: Pipeline) -> dict[str, Table]:
    """Every table of the DuckDB warehouse (BIKE_DUCKDB_PATH)."""
    with duckdb.connect(str(pipeline.warehouse), read_only=True) as conn:
        names = conn.execute(
            "select table_schema || '.' || table_name from information_schema.tables order by 1"
        ).fetchall()
        return {name: _table(conn, name) for (name,) in names}


def spark_tables(warehouse: Path) -> dict[str, Table]:
    """Every table of the Spark warehouse's published version, read with DuckDB."""
    manifest = newest_manifest(warehouse)
    assert manifest is not None, f"nothing published under {warehouse}"
    with duckdb.connect() as conn:
        return {
            name: _table(
                conn,
                f"read_parquet('{warehouse / folder}/*.parquet', hive_partitioning = false)",
            )
            for name, folder in sorted(manifest["tables"].items())
        }


def assert_same_tables(actual: dict[str, Table], expected: dict[str, Table]) -> None:
    assert sorted(actual) == sorted(expected) == PUBLISHED_TABLES
    for name, (columns, rows) in expected.items():
        assert actual[name][0] == columns, name
        assert len(actual[name][1]) == len(rows), name
        assert actual[name][1] == rows, name


# --- Running the graph on each engine ---------------------------------------------------------


def engines(tmp_path: Path, raw_dir: Path, **env: str) -> tuple[Pipeline, Pipeline]:
    """The pipeline on DuckDB, and on Spark (BIKE_ENGINE=spark), on the same export."""
    duck = Pipeline(tmp_path / "warehouse.duckdb", raw_dir, env)
    spark_env = {"BIKE_ENGINE": "spark", "BIKE_SPARK_WAREHOUSE": str(tmp_path / "spark")}
    return duck, duck.with_env(**spark_env)


def spark_warehouse(pipeline: Pipeline) -> Path:
    return Path(pipeline.environment["BIKE_SPARK_WAREHOUSE"])


def run_subset(
    pipeline: Pipeline, keys: list[dg.AssetKey], as_of: str
) -> dg.ExecuteInProcessResult:
    """Materialize only `keys` (as chosen in the UI), as of `as_of`."""
    with environment({**pipeline.environment, "BIKE_AS_OF_DATE": as_of}):
        job = defs().resolve_implicit_global_asset_job_def().get_subset(asset_selection=set(keys))
        return job.execute_in_process(raise_on_error=False)


def failure(result: dg.ExecuteInProcessResult) -> str:
    """The description of the run's first failed step."""
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            return event.step_failure_data.user_failure_data.description or ""
    return ""


def run_both(duck: Pipeline, spark: Pipeline, as_of: str) -> None:
    for pipeline in (duck, spark):
        result = pipeline.run(as_of=as_of)
        assert result.success, failure(result)


# --- The same tables --------------------------------------------------------------------------


def test_the_bundled_sample_gives_the_same_tables_as_of_two_dates(
    spark_connect: str, tmp_path: Path
) -> None:
    """As of 2019-01-01 (before every order of the sample: no customer has orders), then the
    marts alone as of 2025-12-31 (a subset run: the staging and intermediate tables are kept
    from the first version, on both engines)."""
    duck, spark = engines(tmp_path, SAMPLE)
    run_both(duck, spark, "2019-01-01")
    assert_same_tables(spark_tables(spark_warehouse(spark)), duckdb_tables(duck))
    first = newest_manifest(spark_warehouse(spark))

    for pipeline in (duck, spark):
        result = run_subset(pipeline, MARTS, "2025-12-31")
        assert result.success, failure(result)
    assert_same_tables(spark_tables(spark_warehouse(spark)), duckdb_tables(duck))
    second = newest_manifest(spark_warehouse(spark))
    rebuilt = {".".join(key.path) for key in MARTS}
    for name, folder in second["tables"].items():
        assert (folder == first["tables"][name]) == (name not in rebuilt), name
    customers = spark_tables(spark_warehouse(spark))["marts.customers_enriched"]
    assert {row[-1].isoformat() for row in customers[1]} == {"2025-12-31"}


def test_a_generated_export_of_20k_customers_gives_the_same_tables(
    spark_connect: str, tmp_path: Path
) -> None:
    raw = tmp_path / "raw"
    generate_export(raw, customers=20_000, seed=7)
    duck, spark = engines(tmp_path, raw)
    run_both(duck, spark, "2025-06-30")
    tables = duckdb_tables(duck)
    assert len(tables["staging.stg_customers"][1]) == 20_000
    assert_same_tables(spark_tables(spark_warehouse(spark)), tables)


# --- A bad export: quarantined, or refused, the same way ------------------------------------

# Rows to quarantine (the contract's kinds), a value on two lines and a blank line, so that
# lines are not records: rejected_rows must name the same lines on both engines.
QUARANTINED = {
    "customers.csv": [
        "1,Debra,Burks,NULL,debra@yahoo.com,9273 Thorne Ave.,Orchard Park,NY,14127",
        '2,Daryl,Spence,NULL,daryl@aol.com,"988 Pearl Lane\nApt 2",Uniondale,NY,11553',
        "3,Zyx,Quenby,NULL,zyx@msn.com,1 Main St,Houston,TX,07001",
        "3,Zyx,Quenby,NULL,zyx@msn.com,2 Main St,Houston,TX,07001",  # 3 conflicts: both out
        "",
        "1,Debra,Burks,NULL,debra@yahoo.com,9273 Thorne Ave.,Orchard Park,NY,14127",  # kept once
    ],
    "stores.csv": [
        "1,Santa Cruz Bikes,NULL,NULL,3700 Portola Drive,Santa Cruz,CA,95060",
        "2,Baldwin Bikes,NULL,NULL,4200 Chestnut Lane,Baldwin,NY,11432",
    ],
    "orders.csv": [
        "1,1,4,2018-01-01,2018-01-03,2018-01-02,1,2",
        "2,+2,4,2018-02-01,2018-02-03,2018-02-05,2,6",
        "3,3,4,2018-03-01,2018-03-03,2018-03-02,1,2",  # customer 3 quarantined
        "4,09,1,2018-03-01,2018-03-03,NULL,7,6",  # no customer 9, no store 7
    ],
    "order_items.csv": [
        "1,1,10,1,599.99,0.20",
        "1,2,11,-1,100.00,0.10",  # a return: kept, not a fault
        "2,1,12,2,1549.00,1.5",  # discount out of [0, 1]
        "2,2,13,1,-1.50,0",  # negative price
        "2,3,14,1,10.00,1",  # a free item
        "3,1,15,1,100.00,0.10",  # its order is quarantined
        "5,1,16,1,100.00,0.10",  # no order 5
    ],
}


def test_a_quarantined_export_gives_the_same_tables_through_spark_connect(
    spark_connect: str, tmp_path: Path
) -> None:
    """Through BIKE_SPARK_REMOTE (the test session's Spark Connect server), as a cluster
    runs it: the same rows quarantined, with the same lines, keys and reasons."""
    raw = write_export(tmp_path / "raw", QUARANTINED)
    duck, spark = engines(tmp_path, raw, BIKE_MAX_REJECTED_SHARE="1")
    spark = spark.with_env(BIKE_SPARK_REMOTE=spark_connect)
    run_both(duck, spark, "2019-01-01")
    tables = duckdb_tables(duck)
    assert len(tables["staging.rejected_rows"][1]) == 8
    assert_same_tables(spark_tables(spark_warehouse(spark)), tables)


@pytest.fixture(scope="module")
def published_base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pipeline, Pipeline]:
    """Both engines' warehouses with the base case published (the same tables)."""
    _local_spark_serving_connect()
    tmp_path = tmp_path_factory.mktemp("base")
    duck, spark = engines(tmp_path, CASES / "base" / "raw")
    run_both(duck, spark, "2019-01-01")
    assert_same_tables(spark_tables(spark_warehouse(spark)), duckdb_tables(duck))
    return duck, spark


def _wrong_fields(tmp_path: Path) -> Path:
    """The base case, but customers.csv lines 2 and 3 have 8 and 3 fields of 9."""
    customers = ["1,Debra,Burks,NULL,d@y.com,1 St,Orchard Park,NY", "2,A,B"]
    return write_export(tmp_path / "wrong-fields", {**_base_rows(), "customers.csv": customers})


def _base_rows() -> dict[str, list[str]]:
    return {
        path.name: path.read_text(encoding="utf-8").splitlines()[1:]
        for path in (CASES / "base" / "raw").glob("*.csv")
    }


@pytest.mark.parametrize(
    "case",
    [
        "id-exponent",
        "price-too-precise",
        "money-overflow",
        "line-breaks-cr-only",
        "utf16-no-bom",
        "wrong-fields",
    ],
)
def test_a_refused_export_is_refused_alike_and_publishes_nothing(
    published_base: tuple[Pipeline, Pipeline], case: str, tmp_path: Path
) -> None:
    """The same message (file, line, key, column, value as written), and every published
    table as it was."""
    duck, spark = published_base
    before_duck, before_spark = duckdb_tables(duck), newest_manifest(spark_warehouse(spark))
    raw = _wrong_fields(tmp_path) if case == "wrong-fields" else CASES / case / "raw"
    messages = []
    for pipeline in (duck.with_raw_dir(raw), spark.with_raw_dir(raw)):
        result = pipeline.run(as_of="2019-01-01")
        assert not result.success
        messages.append(failure(result))
    if case == "wrong-fields":  # the message says the same, in the engine's words
        for message in messages:
            assert "customers.csv line 3" in message and "3 fields" in message, message
    else:
        assert messages[1] == messages[0]
    assert duckdb_tables(duck) == before_duck
    assert newest_manifest(spark_warehouse(spark)) == before_spark


def test_a_failed_run_leaves_the_published_version_and_no_folder_behind(
    published_base: tuple[Pipeline, Pipeline], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that fails after it wrote staging and intermediate: the newest manifest is the
    one before, and the run's own folders are removed; the next run publishes."""
    _, spark = published_base
    warehouse = spark_warehouse(spark)
    before, tables = newest_manifest(warehouse), spark_tables(warehouse)
    folders = set(warehouse.glob("*.db/*/v=*"))

    import bike_assets.defs.marts.customers_enriched as module

    monkeypatch.setattr(module, "render", lambda *args, **kwargs: "select nonsense")
    result = spark.run(as_of="2019-01-01")
    assert not result.success
    assert newest_manifest(warehouse) == before
    assert spark_tables(warehouse) == tables
    assert set(warehouse.glob("*.db/*/v=*")) == folders
    monkeypatch.undo()
    assert spark.run(as_of="2019-01-01").success
    assert newest_manifest(warehouse)["name"] > before["name"]
    assert spark_tables(warehouse) == tables
