"""Tests of write-audit-publish: a table is replaced only after its ERROR checks pass; audit_job."""

import os
import subprocess
import sys
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from bike_assets import definitions, marts, rules
from bike_assets.intermediate import ORDERS_ENRICHED
from bike_assets.publish import Column, warehouse_asset
from bike_assets.resources import WarehouseIOManager
from bike_assets.staging import STG_CUSTOMERS
from bike_assets_tests.conftest import (
    PUBLISHED_TABLES,
    TINY_EXPORT,
    Pipeline,
    check_results,
    query,
    sample_rows,
    write_export,
)

REPO = Path(__file__).resolve().parents[1]
MARTS = ("marts.customers_enriched", "marts.region_segment_summary")

# TINY_EXPORT plus order 4: customer 3's first order, 1 x 1000.00 at store 1.
NEW_EXPORT = {
    **TINY_EXPORT,
    "orders.csv": [*TINY_EXPORT["orders.csv"], "4,3,4,2024-04-01,2024-04-03,2024-04-02,1,2"],
    "order_items.csv": [*TINY_EXPORT["order_items.csv"], "4,1,14,1,1000.00,0"],
}


def break_regular_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulate a bad code change: `Regular` from 3 orders instead of 2 (`>` for `>=`).

    No export can make an ERROR check fail: staging quarantines every faulty row. A wrong rule
    can: customers_enriched reads `rules.customer_segment` when it builds its table, while the
    check's SQL was made from the true rule at import. Customer 1 (2 orders) becomes New.
    """
    true_rule = rules.customer_segment

    def off_by_one(total_orders: str, total_spent: str) -> str:
        sql = true_rule(total_orders, total_spent)
        broken = sql.replace(f"{total_orders} >= 2", f"{total_orders} > 2")
        assert broken != sql, sql  # the rule's SQL changed shape: update this simulation
        return broken

    monkeypatch.setattr(rules, "customer_segment", off_by_one)


def steps(result: dg.ExecuteInProcessResult, event_type: dg.DagsterEventType) -> set[str]:
    return {e.step_key for e in result.all_events if e.event_type == event_type}


def staged_tables(pipeline: Pipeline) -> list[dict[str, object]]:
    return query(
        pipeline,
        "select table_schema, table_name from information_schema.tables "
        "where starts_with(table_name, '__staged_')",
    )


def test_failed_error_check_keeps_previous_tables_and_stops_downstream(
    tiny_pipeline, tmp_path, monkeypatch
):
    assert tiny_pipeline.run().success
    before = tiny_pipeline.tables()
    break_regular_rule(monkeypatch)

    result = tiny_pipeline.with_raw_dir(write_export(tmp_path / "new", NEW_EXPORT)).run()

    assert not result.success
    assert steps(result, dg.DagsterEventType.STEP_SUCCESS) == {"staging", "orders_enriched"}
    assert steps(result, dg.DagsterEventType.STEP_FAILURE) == {"customers_enriched"}
    assert "region_segment_summary" not in steps(result, dg.DagsterEventType.STEP_START)
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert not materialized & {"marts/customers_enriched", "marts/region_segment_summary"}

    after = tiny_pipeline.tables()
    for name in MARTS:  # the failed table and the one downstream: exactly their previous rows
        assert_frame_equal(after[name], before[name])
    # Upstream passed its checks and published the new export: orders 1 to 4.
    assert after["intermediate.orders_enriched"]["order_id"].tolist() == [1, 2, 3, 4]

    evaluation = check_results(result)["customers_enriched/customer_segment_is_valid"]
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert evaluation.metadata["failing_rows"].value == 1
    assert sample_rows(evaluation.metadata) == [
        {
            "customer_id": "1",
            "total_orders": "2",
            "total_spent": "190.27",  # 0.27 + 190.00
            "customer_segment": "New",
            "expected_segment": "Regular",
        }
    ]
    assert not any(name.startswith("region_segment_summary/") for name in check_results(result))
    (failure,) = result.get_step_failure_events()
    assert "customer_segment_is_valid" in failure.event_specific_data.error.message


def test_staged_copies_are_gone_after_success_and_published_tables_answer_after_failure(
    tiny_pipeline, tmp_path, monkeypatch
):
    assert tiny_pipeline.run().success
    assert staged_tables(tiny_pipeline) == []
    assert sorted(tiny_pipeline.tables()) == PUBLISHED_TABLES

    new_export = tiny_pipeline.with_raw_dir(write_export(tmp_path / "new", NEW_EXPORT))
    with monkeypatch.context() as patch:
        break_regular_rule(patch)
        assert not new_export.run().success
    # The published table still answers, with the last good run's figures.
    assert query(
        tiny_pipeline,
        "select customer_id, total_orders, customer_segment from marts.customers_enriched "
        "order by customer_id",
    ) == [
        {"customer_id": 1, "total_orders": 2, "customer_segment": "Regular"},
        {"customer_id": 2, "total_orders": 1, "customer_segment": "New"},
        {"customer_id": 3, "total_orders": None, "customer_segment": "New"},
    ]

    # Once the rule is right again, the next run publishes the new export and leaves no copy.
    assert new_export.run().success
    assert staged_tables(tiny_pipeline) == []
    assert query(
        tiny_pipeline,
        "select total_orders, total_spent, ltv_segment from marts.customers_enriched "
        "where customer_id = 3",
    ) == [{"total_orders": 1, "total_spent": Decimal("1000.00"), "ltv_segment": "Silver"}]


@pytest.fixture
def edited_warehouse(tiny_pipeline: Pipeline) -> Pipeline:
    """After a good run, customer 2 (1 order, 479.99) relabelled VIP by hand: it should be New."""
    assert tiny_pipeline.run().success
    with duckdb.connect(tiny_pipeline.settings.duckdb_path) as conn:
        conn.execute(
            "update marts.customers_enriched set customer_segment = 'VIP' where customer_id = 2"
        )
    return tiny_pipeline


def test_audit_job_cli_fails_naming_the_check_and_the_customer(edited_warehouse, tmp_path):
    before = edited_warehouse.tables()
    (tmp_path / "dagster_home").mkdir()
    env = {
        **os.environ,
        "BIKE_DUCKDB_PATH": edited_warehouse.settings.duckdb_path,
        "BIKE_RAW_DIR": edited_warehouse.settings.raw_dir,
        "BIKE_LOCK_TIMEOUT_SECONDS": "2",
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "PYTHONPATH": str(REPO),
    }
    dagster = Path(sys.executable).with_name("dagster")
    command = [str(dagster), "job", "execute", "-m", "bike_assets.definitions", "-j", "audit_job"]

    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)

    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "customer_segment_is_valid" in output
    # customer_id, total_orders, total_spent, customer_segment, expected_segment
    assert "| 2 | 1 | 479.99 | VIP | New |" in output
    after = edited_warehouse.tables()
    for name, frame in before.items():  # the audit changed nothing
        assert_frame_equal(after[name], frame)


def test_audit_job_materializes_nothing(tiny_pipeline):
    assert tiny_pipeline.run().success
    before = tiny_pipeline.tables()

    result = tiny_pipeline.run("audit_job")

    assert result.success
    assert result.get_asset_materialization_events() == []
    # Checks by table: stg_customers 5, stg_stores 2, stg_orders 4, stg_order_items 4,
    # rejected_rows 2, orders_enriched 7, customers_enriched 7, region_segment_summary 5 = 36.
    evaluations = check_results(result)
    assert len(evaluations) == 36
    assert all(e.passed for e in evaluations.values())
    after = tiny_pipeline.tables()
    for name, frame in before.items():
        assert_frame_equal(after[name], frame)


def test_audit_job_reports_a_hand_edited_table_and_leaves_it(edited_warehouse):
    result = edited_warehouse.run("audit_job")

    assert not result.success
    assert result.get_asset_materialization_events() == []
    evaluation = check_results(result)["customers_enriched/customer_segment_is_valid"]
    assert not evaluation.passed
    assert evaluation.metadata["failing_rows"].value == 1
    assert sample_rows(evaluation.metadata) == [
        {
            "customer_id": "2",
            "total_orders": "1",
            "total_spent": "479.99",
            "customer_segment": "VIP",
            "expected_segment": "New",
        }
    ]
    assert query(
        edited_warehouse,
        "select customer_segment from marts.customers_enriched where customer_id = 2",
    ) == [{"customer_segment": "VIP"}]


def test_a_column_added_and_one_removed_between_runs_replace_the_table(tiny_pipeline, monkeypatch):
    assert tiny_pipeline.run().success

    # The code change: customers_enriched loses email_hash and gains repeat_customer.
    table = replace(
        marts.CUSTOMERS_ENRICHED,
        columns=(
            *(c for c in marts.CUSTOMERS_ENRICHED.columns if c.name != "email_hash"),
            Column("repeat_customer", "BOOLEAN", "Placed at least two orders."),
        ),
    )

    def build(context: dg.AssetExecutionContext, conn: duckdb.DuckDBPyConnection) -> dict:
        (select,) = marts._customers_enriched(context, conn).values()
        return {
            "customers_enriched": "select * exclude (email_hash), "
            f"coalesce(total_orders, 0) >= 2 as repeat_customer from ({select})"
        }

    changed = warehouse_asset(
        name="customers_enriched",
        description=table.description,
        group_name="marts",
        tables=[table],
        reads=[STG_CUSTOMERS, ORDERS_ENRICHED],
        build=build,
        config_schema=marts.AS_OF_CONFIG,
    )
    monkeypatch.setattr(definitions, "customers_enriched", changed)

    result = tiny_pipeline.run()

    assert result.success
    customers = tiny_pipeline.table("marts.customers_enriched")
    assert list(customers.columns) == [c.name for c in table.columns]
    assert "email_hash" not in customers.columns
    assert customers[["customer_id", "repeat_customer"]].values.tolist() == [
        [1, True],  # 2 orders
        [2, False],  # 1 order
        [3, False],  # no orders
    ]
    # Downstream read the new version: 2 customers with orders, (190.27 + 479.99) / 2 = 335.13.
    assert query(tiny_pipeline, "select * from marts.region_segment_summary") == [
        {
            "region": "Northeast",
            "customer_segment": "Bronze",
            "num_customers": 2,
            "avg_ltv": Decimal("335.13"),
            "avg_orders": Decimal("1.50"),
        }
    ]
    assert staged_tables(tiny_pipeline) == []


# --- The IO manager, directly -----------------------------------------------------------------


def publish_frame(database: str, frame: pd.DataFrame, read: list) -> dg.ExecuteInProcessResult:
    """Materialize scratch.frame from a DataFrame, and an asset downstream that reads it back."""

    @dg.asset(key=["scratch", "frame"])
    def published() -> pd.DataFrame:
        return frame

    @dg.asset(key=["scratch", "reader"], ins={"published": dg.AssetIn(["scratch", "frame"])})
    def reader(published: pd.DataFrame) -> None:
        read.append(published)

    io_manager = WarehouseIOManager(database=database, connection_config={}, lock_timeout_seconds=2)
    return dg.materialize(
        [published, reader], resources={"io_manager": io_manager}, raise_on_error=False
    )


def stored(database: str) -> pd.DataFrame:
    with duckdb.connect(database, read_only=True) as conn:
        return conn.execute("select * from scratch.frame").fetchdf()


def test_io_manager_replaces_a_table_by_a_frame_with_other_columns(tmp_path):
    database = str(tmp_path / "io.duckdb")
    read: list[pd.DataFrame] = []
    first = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    second = pd.DataFrame({"a": [3, 4, 5], "c": [0.5, 1.5, 2.5]})

    assert publish_frame(database, first, read).success
    assert publish_frame(database, second, read).success

    assert_frame_equal(stored(database), second)
    assert [type(frame) for frame in read] == [pd.DataFrame, pd.DataFrame]
    assert_frame_equal(read[1], second)


def test_io_manager_keeps_the_previous_version_when_a_write_fails(tmp_path):
    database = str(tmp_path / "io.duckdb")
    good = pd.DataFrame({"a": [1, 2]})
    assert publish_frame(database, good, []).success

    # DuckDB cannot store complex numbers: the write fails. The stock DuckDB IO manager deletes
    # the rows before writing and would leave an empty table; this one replaces or keeps.
    failed = publish_frame(database, pd.DataFrame({"a": np.array([1 + 2j])}), [])

    assert not failed.success
    assert_frame_equal(stored(database), good)
