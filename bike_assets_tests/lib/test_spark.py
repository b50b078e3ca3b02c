"""The Spark engine's parts (lib/dialects.py, lib/spark.py, the engine's settings): the SQL's
translation, rule by rule against DuckDB; publication by manifest (what a reader sees, a killed
run, retention, one run at a time); BIKE_ENGINE and the BIKE_SPARK_* settings; the DuckDB path
without pyspark.

The graph end to end on both engines is bike_assets_tests/test_engines.py.
"""

import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import jinja2
import pytest

from bike_assets.defs.resources import SettingError, SparkWarehouse, engine_warehouse
from bike_assets.lib import dialects, pii
from bike_assets.lib import spark as spark_engine
from bike_assets.lib.sql import SQL_DIR, expand
from bike_assets.lib.warehouse import WarehouseError
from bike_assets_tests.conftest import TINY_EXPORT, Pipeline, environment, write_export
from bike_assets_tests.sql import test_keys
from bike_assets_tests.test_engines import newest_manifest, spark_connect  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


# --- Translation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duckdb_sql", "spark_sql"),
    [
        ("select getvariable('pii_inner_pad')", "SELECT system.session.pii_inner_pad"),
        ("select cast(x as hugeint) // 2", "SELECT CAST(x AS DECIMAL(38, 0)) DIV 2"),
        ("select error('no')", "SELECT RAISE_ERROR('no')"),
        ("select c glob '[0-9]*'", "SELECT c RLIKE '^[0-9].*$'"),
        ("select regexp_full_match(c, 'a|b')", "SELECT c RLIKE '^(?:a|b)$'"),
        (
            "select string_agg(distinct r, '; ' order by r) from t",
            "SELECT ARRAY_JOIN(ARRAY_SORT(COLLECT_SET(r)), '; ') FROM t",
        ),
        (
            "select list(x order by y) from t",
            "SELECT TRANSFORM(ARRAY_SORT(COLLECT_LIST(STRUCT(y AS k0, x AS v))), e -> e.v) FROM t",
        ),
        ("select a from staging.t", "SELECT a FROM view_of_t AS t"),
        ("select a from staging.t as s", "SELECT a FROM view_of_t AS s"),
    ],
)
def test_each_duckdb_spelling_has_its_spark_spelling(duckdb_sql: str, spark_sql: str) -> None:
    assert dialects.to_spark(duckdb_sql, {"staging.t": "view_of_t"}) == spark_sql


def test_a_table_the_version_does_not_hold_is_named() -> None:
    with pytest.raises(dialects.UnknownTable, match=r"staging\.nope: no such table.*staging\.t"):
        dialects.to_spark("select * from staging.nope", {"staging.t": "v"})


def test_information_schema_columns_are_the_version_s_columns_typed_as_duckdb_names_them() -> None:
    sql = dialects.to_spark(
        "select column_name, data_type from information_schema.columns "
        "where table_catalog = current_database() and table_name = 't'",
        {},
        lambda: [("staging", "t", "a", "BIGINT")],
    )
    assert "VALUES ('staging', 't', 'a', 'BIGINT')" in sql
    assert [dialects.contract_type(t) for t in ("bigint", "int", "string", "decimal(18,2)")] == [
        "BIGINT",
        "INTEGER",
        "VARCHAR",
        "DECIMAL(18,2)",
    ]


@pytest.mark.parametrize("pattern", ["*[!0-9+-]*", "[0-9][0-9]-*", "a?c", "*.*", "[]]x", "a[!]]"])
def test_a_glob_and_its_regex_match_the_same_strings(pattern: str) -> None:
    """Independent route: DuckDB's GLOB against Python's regex of glob_to_regex."""
    words = ["", "12", "1.5", "-3", "+4", "1e3", "12-x", "ab", "abc", "a.c", "]x", "a]", "ax", " 1"]
    regex = dialects.glob_to_regex(pattern)
    glob = duckdb.execute(
        "select w from unnest(?::varchar[]) t(w) where w glob ?", [words, pattern]
    ).fetchall()
    assert [w for w in words if re.fullmatch(regex, w, re.DOTALL)] == [w for (w,) in glob]


# --- Every rule: the same values on Spark as on DuckDB ----------------------------------------

RULES = jinja2.Environment(loader=jinja2.FileSystemLoader(SQL_DIR)).get_template("macros/rules.sql")
ROWS = """
    select
        cast(email as varchar) as email, cast(phone as varchar) as phone,
        cast(status as integer) as status, cast(o as date) as o, cast(r as date) as r,
        cast(s as date) as s, cast(p as decimal(18,2)) as p, cast(q as integer) as q,
        cast(d as decimal(18,6)) as d, cast(spent as decimal(18,2)) as spent,
        cast(n as bigint) as n
    from (values
        (' A@B.com ', '(916) 381-6003', 1, '2024-01-01', '2024-01-03', '2024-01-02',
         '599.99', 1, '0.2', '5000.00', 10),
        ('x@y.z', null, 2, '2024-01-01', null, '2024-01-05', '1799.99', 2, '0.07',
         '4999.99', 10),
        ('', '', 3, '2024-02-01', '2024-02-03', '2024-01-30', '0.15', 1, '0.1', '1000.00', 2),
        (null, '123', 4, '2024-02-01', '2024-02-03', null, '0.01', 3, '0.499999', '0.01', 1),
        ('q@q.q', '5', 4, '2024-03-01', '2024-03-01', '2024-03-31', '9999999.99', 7,
         '1', '10000.00', 3),
        ('Ñ@é.es', 'x', null, '1900-01-01', '2199-12-31', '2199-12-31', '0.00', -1, '0',
         '2000.00', 5)
    ) as t(email, phone, status, o, r, s, p, q, d, spent, n)
"""
EVERY_RULE = (
    "select {{ normalized_email('email') }}, {{ normalized_phone('phone') }}, "
    "{{ keyed_hash(normalized_email('email')) }}, {{ order_status_label('status') }}, "
    "{{ delivery_status('o', 'r', 's') }}, {{ days_to_ship('o', 's') }}, "
    "{{ days_between('o', 's') }}, {{ counts_toward_order('q') }}, "
    "{{ line_net_price('p', 'q', 'd') }}, {{ cents_half_up(line_net_price('p', 'q', 'd')) }}, "
    "{{ divide_half_up('spent', 'n') }}, {{ customer_segment('n', 'spent') }}, "
    "{{ ltv_segment('spent') }}, {{ census_region('null') }}, {{ gender('null') }}, "
    "{{ primary_store_rank('status', 'n', 'o', 'p') }} "
    "from ({{ rows }}) order by all"
)


@pytest.mark.usefixtures("spark_connect")
def test_every_rule_gives_the_same_values_on_spark_as_on_duckdb() -> None:
    """Each macro of sql/macros/rules.sql on the same rows, translated: the same values
    (Decimal, date, text) on both engines; the keyed hash is also HMAC-SHA256 (Python)."""
    sql = jinja2.Environment().from_string(EVERY_RULE).render(**RULES.module.__dict__, rows=ROWS)
    key = b"test-key"
    with duckdb.connect() as conn:
        pii.set_key(conn, key)
        expected = conn.execute(sql).fetchall()
    engine = spark_engine.SparkEngine("", str(ROOT / "data" / "spark-warehouse"), 1)
    spark_engine.set_pii_key(engine.spark, key)
    connection = spark_engine.SparkConnection(engine.spark, engine.root, {})
    assert connection.execute(sql).fetchall() == expected
    email = next(row for row in expected if row[0] == "a@b.com")
    assert email[2] == hmac.new(key, b"a@b.com", hashlib.sha256).hexdigest()


@pytest.mark.usefixtures("spark_connect")
def test_the_key_checks_by_buckets_give_the_plain_queries_rows_on_spark() -> None:
    """sql/macros/keys.sql on random keys (repeats, negative, huge, null), translated: on
    Spark, the rows DuckDB's plain queries give (bike_assets_tests/sql/test_keys.py)."""
    lines, orders = test_keys.random_keys(3)

    def relation(rows: list[tuple], columns: str) -> str:
        values = ", ".join(
            "(" + ", ".join("null" if v is None else str(v) for v in row) + ")" for row in rows
        )
        typed = ", ".join(f"cast({c} as bigint) as {c}" for c in columns.split(", "))
        return f"(select {typed} from (values {values}) as v({columns}))"

    line_rows, order_rows = relation(lines, "order_id, item_id"), relation(orders, "order_id")
    cases = [
        (
            expand("repeated_keys(r, ['order_id', 'item_id'], 'order_id')", r=line_rows),
            test_keys.PLAIN_REPEATED.format(
                key="order_id, item_id",
                relation=line_rows,
                any_null="order_id is null or item_id is null",
            ),
        ),
        (
            expand("missing_references(r, 'order_id', p)", r=line_rows, p=order_rows),
            test_keys.PLAIN_MISSING.format(
                relation=line_rows, parent=order_rows, column="order_id"
            ),
        ),
        (
            expand(
                "keys_not_once_in_both(r, 'order_id', p, 'rows_there')", r=order_rows, p=line_rows
            ),
            test_keys.PLAIN_NOT_ONCE.format(relation=order_rows, parent=line_rows, key="order_id"),
        ),
    ]
    engine = spark_engine.SparkEngine("", str(ROOT / "data" / "spark-warehouse"), 1)
    connection = spark_engine.SparkConnection(engine.spark, engine.root, {})
    with duckdb.connect() as conn:
        for fast, plain in cases:
            expected = sorted(conn.execute(plain).fetchall(), key=repr)
            assert expected
            assert sorted(connection.execute(fast).fetchall(), key=repr) == expected


# --- Publication by manifest --------------------------------------------------------------------


def _engine(warehouse: Path, timeout: float = 2) -> "spark_engine.SparkEngine":
    return spark_engine.SparkEngine("", str(warehouse), timeout)


def _rows(warehouse: Path, folder: str) -> list[tuple]:
    return duckdb.execute(
        f"select * from read_parquet('{warehouse / folder}/*.parquet', hive_partitioning = false) "
        "order by all"
    ).fetchall()


@pytest.mark.usefixtures("spark_connect")
def test_a_version_is_seen_only_once_its_manifest_is_written(tmp_path: Path) -> None:
    """Before publish: the run's folder exists, no manifest names it (a reader following the
    newest manifest sees the previous version). After: the new version, whole."""
    warehouse = tmp_path / "w"
    engine = _engine(warehouse)
    candidate = engine.open("run-one-0000")
    assert candidate.create_table("staging.t", "select 1 as a") == 1
    assert candidate.create_table("marts.u", "select a + 1 as b from staging.t") == 1
    assert newest_manifest(warehouse) is None
    assert list(warehouse.glob("staging.db/t/v=*"))
    engine.publish()
    manifest = newest_manifest(warehouse)
    assert sorted(manifest["tables"]) == ["marts.u", "staging.t"]
    assert _rows(warehouse, manifest["tables"]["marts.u"]) == [(2,)]

    engine = _engine(warehouse)  # the next run: rebuilds marts.u only
    candidate = engine.open("run-two-0000")
    candidate.create_table("marts.u", "select a + 10 as b from staging.t")
    assert newest_manifest(warehouse) == manifest
    lines = engine.publish()
    assert lines[0].startswith("version ") and lines[1] == "marts.u (1 rows)"
    assert lines[-1] == "kept from the previous version: staging.t"
    second = newest_manifest(warehouse)
    assert second["tables"]["staging.t"] == manifest["tables"]["staging.t"]
    assert _rows(warehouse, second["tables"]["marts.u"]) == [(11,)]


@pytest.mark.usefixtures("spark_connect")
def test_a_killed_run_leaves_the_published_version_and_its_folders_go_with_the_next_run(
    tmp_path: Path,
) -> None:
    warehouse = tmp_path / "w"
    engine = _engine(warehouse)
    engine.open("run-good-000").create_table("staging.t", "select 1 as a")
    engine.publish()
    published = newest_manifest(warehouse)

    killed = _engine(warehouse)
    killed.open("run-killed-0").create_table("staging.t", "select 2 as a")
    killed._lock.release()  # the process died: the system released its lock, nothing else ran
    assert newest_manifest(warehouse) == published
    assert len(list(warehouse.glob("staging.db/t/v=*"))) == 2

    _engine(warehouse).open("run-next-000")
    assert [p.relative_to(warehouse).as_posix() for p in warehouse.glob("staging.db/t/v=*")] == [
        published["tables"]["staging.t"]
    ]
    assert _rows(warehouse, published["tables"]["staging.t"]) == [(1,)]


@pytest.mark.usefixtures("spark_connect")
def test_the_two_newest_versions_are_kept(tmp_path: Path) -> None:
    """A reader who resolved the version before the newest can still read it; older ones go."""
    warehouse = tmp_path / "w"
    manifests = []
    for value in (1, 2, 3):
        engine = _engine(warehouse)
        engine.open(f"run-{value}-000000").create_table("staging.t", f"select {value} as a")
        engine.publish()
        manifests.append(newest_manifest(warehouse))
    kept = sorted(p.name for p in (warehouse / "_published").iterdir())
    assert kept == sorted(m["name"] for m in manifests[1:])
    folders = sorted(p.relative_to(warehouse).as_posix() for p in warehouse.glob("*.db/*/v=*"))
    assert folders == sorted(m["tables"]["staging.t"] for m in manifests[1:])
    assert not (warehouse / "_work").exists()


@pytest.mark.usefixtures("spark_connect")
def test_a_second_run_waits_for_the_first_then_fails_saying_which_run_holds_it(
    tmp_path: Path,
) -> None:
    warehouse = tmp_path / "w"
    first = _engine(warehouse)
    first.open("run-first-00")
    with pytest.raises(WarehouseError, match=r"Another run is writing the warehouse .*run-first"):
        _engine(warehouse, timeout=0.3).open("run-second-0")
    first.release()
    _engine(warehouse).open("run-second-0")


@pytest.mark.usefixtures("spark_connect")
def test_the_layers_must_agree_before_a_version_is_published(tmp_path: Path) -> None:
    warehouse = tmp_path / "w"
    engine = _engine(warehouse)
    candidate = engine.open("run-layers-0")
    candidate.create_table("staging.stg_orders", "select 1 as order_id")
    candidate.create_table("intermediate.orders_enriched", "select 2 as order_id")
    with pytest.raises(WarehouseError, match="same_order_ids_as_stg_orders: 2 failing row"):
        engine.publish()
    engine.release()
    assert newest_manifest(warehouse) is None
    assert not list(warehouse.glob("*.db/*/v=*"))


# --- Settings -----------------------------------------------------------------------------------


def test_bike_engine_is_validated_when_the_code_location_loads() -> None:
    with environment({"BIKE_ENGINE": "sprak"}), pytest.raises(SettingError) as error:
        engine_warehouse()
    assert error.value.description == (
        "BIKE_ENGINE='sprak': expected duckdb (the default) or spark."
    )
    with environment({"BIKE_ENGINE": "Spark"}):
        assert type(engine_warehouse()).__name__ == "SparkWarehouse"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("BIKE_SPARK_REMOTE", "localhost:15002", "a Spark Connect URL such as sc://"),
        ("BIKE_SPARK_REMOTE", "sc://host:port", "a Spark Connect URL such as sc://"),
        ("BIKE_SPARK_WAREHOUSE", "s3a://bucket/w", "a folder (a URI such as s3a://bucket/w"),
        ("BIKE_SPARK_WAREHOUSE", "a-file", "a folder, not a file"),
        ("BIKE_LOCK_TIMEOUT_SECONDS", "-1", "a number of seconds >= 0"),
    ],
)
def test_a_bad_spark_setting_fails_the_run_before_spark_starts_naming_it(
    tmp_path: Path, variable: str, value: str, expected: str
) -> None:
    if value == "a-file":
        value = str(tmp_path / "a-file")
        Path(value).write_text("not a folder")
    pipeline = Pipeline(tmp_path / "w.duckdb", write_export(tmp_path / "raw", TINY_EXPORT))
    result = pipeline.with_env(BIKE_ENGINE="spark", **{variable: value}).run()
    assert not result.success
    assert f"{variable}={value!r}: expected {expected}" in _errors(result)
    assert not [e for e in result.all_events if e.event_type_value == "STEP_START"]


@pytest.mark.parametrize(
    "url", ["sc://spark-1.lan:15002", "sc://localhost", "sc://host:443/;use_ssl=true;token=abc"]
)
def test_a_spark_connect_url_is_accepted(url: str) -> None:
    SparkWarehouse(remote=url).validate()


def _errors(result: dg.ExecuteInProcessResult) -> str:
    """The text of a failed run's errors, with their causes."""
    return "\n".join(
        event.event_specific_data.error.to_string()
        for event in result.all_events
        if event.is_failure and getattr(event.event_specific_data, "error", None)
    )


@pytest.mark.usefixtures("spark_connect")
def test_audit_job_on_spark_before_the_first_run_says_so_once(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path / "w.duckdb", write_export(tmp_path / "raw", TINY_EXPORT))
    pipeline = pipeline.with_env(BIKE_ENGINE="spark", BIKE_SPARK_WAREHOUSE=str(tmp_path / "w"))
    result = pipeline.run("audit_job")
    assert not result.success
    message = _errors(result)
    assert "No table has been published yet" in message and "daily_refresh" in message
    assert not [e for e in result.all_events if e.event_type_value == "STEP_START"]


# --- The DuckDB path, and the UI's kinds ----------------------------------------------------------

_LOAD = """
import json, sys
import dagster as dg
from bike_assets.definitions import defs
from bike_assets_tests.conftest import TINY_EXPORT, Pipeline, write_export
from pathlib import Path
d = defs()
kinds = sorted({k for spec in d.resolve_all_asset_specs() if spec.key.path[0] == "marts"
                for k in spec.kinds})
if sys.argv[1] == "run":
    folder = Path(sys.argv[2])
    pipeline = Pipeline(folder / "w.duckdb", write_export(folder / "raw", TINY_EXPORT))
    assert pipeline.run().success
print(json.dumps({"kinds": kinds, "warehouse": type(d.resources["warehouse"]).__name__,
                  "imported": sorted(m for m in ("pyspark", "sqlglot") if m in sys.modules)}))
"""


def _load(tmp_path: Path, engine: str | None, run: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "BIKE_ENGINE"}
    if engine:
        env["BIKE_ENGINE"] = engine
    done = subprocess.run(
        [sys.executable, "-c", _LOAD, "run" if run else "load", str(tmp_path)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_duckdb_path_never_imports_pyspark_or_sqlglot(tmp_path: Path) -> None:
    """The code location loaded and a whole run made with the default engine."""
    loaded = _load(tmp_path, None, run=True)
    assert loaded == {"kinds": ["duckdb", "sql"], "warehouse": "DuckDBWarehouse", "imported": []}


def test_the_ui_shows_the_engine_in_the_tables_kinds(tmp_path: Path) -> None:
    loaded = _load(tmp_path, "spark", run=False)
    assert loaded == {"kinds": ["spark", "sql"], "warehouse": "SparkWarehouse", "imported": []}


@pytest.mark.usefixtures("spark_connect")
def test_the_published_decimals_and_dates_are_parquet_types_a_reader_gets_as_such(
    tmp_path: Path,
) -> None:
    """DuckDB (and pandas) read the contract's types from Spark's Parquet files."""
    warehouse = tmp_path / "w"
    engine = _engine(warehouse)
    engine.open("run-types-00").create_table(
        "marts.t",
        "select cast(12.5 as decimal(18,2)) as money, date '2019-01-01' as day, "
        "cast(7 as bigint) as n, cast(3 as integer) as i, 'x' as s",
    )
    engine.publish()
    folder = warehouse / newest_manifest(warehouse)["tables"]["marts.t"]
    relation = duckdb.sql(f"select * from read_parquet('{folder}/*.parquet')")
    types = [str(kind) for kind in relation.types]
    assert types == ["DECIMAL(18,2)", "DATE", "BIGINT", "INTEGER", "VARCHAR", "VARCHAR"]
    assert relation.fetchall()[0][:5] == (Decimal("12.50"), date(2019, 1, 1), 7, 3, "x")
    assert relation.columns[-1] == "v"  # the version's folder, v=<version>, read as a column
