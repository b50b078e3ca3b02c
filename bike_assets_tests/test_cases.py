"""The cases of bad input (bike_assets_tests/cases/, copied from the project's shared cases):
each through the whole pipeline, as of 2019-01-01, with the outcome its README states.

Accepted cases publish the figures computed by hand below; refused ones fail naming the file,
the line, the column and the cause, and leave every published table as it was: the base export
is published into the same warehouse first. The kinds of bad input of the old suite (ported
from test_faults.py, on the conftest's TINY_EXPORT) are refused the same way.
"""

import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from bike_assets_tests.conftest import (
    TINY_EXPORT,
    Pipeline,
    assert_tables_equal,
    check_results,
    published_tables,
    query,
    sample_rows,
    write_export,
)
from bike_assets_tests.lib.test_export import STRUCTURAL_FAULTS

CASES = Path(__file__).parent / "cases"
AS_OF = "2019-01-01"


def case_pipeline(folder: Path, case: str, warehouse: Path | None = None) -> Pipeline:
    """The pipeline on a copy of the case's export (and of `warehouse`, when given)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(CASES / case / "raw", folder / "raw")
    if warehouse is not None:
        shutil.copy(warehouse, folder / "warehouse.duckdb")
    return Pipeline(folder / "warehouse.duckdb", folder / "raw")


def failure(result: dg.ExecuteInProcessResult) -> str:
    """The description of the run's one step failure."""
    assert not result.success
    [failed] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return failed.event_specific_data.user_failure_data.description


def orders(pipeline: Pipeline) -> list[tuple]:
    return [
        tuple(row.values())
        for row in query(
            pipeline,
            "select order_id, total_items, unique_products, total_order_net_price, "
            "delivery_status, days_to_ship from intermediate.orders_enriched order by 1",
        )
    ]


def customers(pipeline: Pipeline) -> list[tuple]:
    return [
        tuple(row.values())
        for row in query(
            pipeline,
            "select customer_id, store_id, total_orders, total_spent, avg_order_value, "
            "first_order_date, last_order_date, total_items_purchased, days_since_last_order, "
            "customer_segment, ltv_segment from marts.customers_enriched order by 1",
        )
    ]


# The base export as of 2019-01-01 (cases/README.md).
# order 1: 599.99 x 1 x 0.80 + 1799.99 x 2 x 0.93 = 479.992 + 3347.9814 = 3827.9734 -> 3827.97,
# shipped on its required day (On Time), 2 days after it was placed; order 2: 1549.00 x 0.95 =
# 1471.55, shipped 2 days late (Late), 4 days after; order 3: 100.00 x 0.90 = 90.00, not shipped
# (Pending); order 4: no lines, 0.00, shipped on its required day.
BASE_ORDERS = [
    (1, 3, 2, Decimal("3827.97"), "On Time", 2),
    (2, 1, 1, Decimal("1471.55"), "Late", 4),
    (3, 1, 1, Decimal("90.00"), "Pending", None),
    (4, 0, 0, Decimal("0.00"), "On Time", 2),
]
# customer 1: orders 1 (store 1) and 2 (store 2): a tie, won by the store of the latest order
# (2); 3827.97 + 1471.55 = 5299.52, avg 2649.76, 4 items, last order 2016-02-01, 1065 days
# before 2019-01-01 (366 + 365 + 334); Regular (2 orders), Gold (>= 5000).
# customer 2: orders 3 and 4, both store 1; 90.00 + 0.00, avg 45.00, 1 item, last order
# 2016-04-01, 1005 days before (365 + 365 + 275); Regular, Bronze.
BASE_CUSTOMERS = [
    (1, 2, 2, Decimal("5299.52"), Decimal("2649.76"), date(2016, 1, 1), date(2016, 2, 1), 4,
     1065, "Regular", "Gold"),
    (2, 1, 2, Decimal("90.00"), Decimal("45.00"), date(2016, 3, 1), date(2016, 4, 1), 1, 1005,
     "Regular", "Bronze"),
]  # fmt: skip


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    """A warehouse where the base export was published (as of 2019-01-01)."""
    pipeline = case_pipeline(tmp_path_factory.mktemp("base"), "base")
    assert pipeline.run(as_of=AS_OF).success
    return pipeline


@pytest.fixture(scope="module")
def base_tables(base: Pipeline) -> dict[str, pd.DataFrame]:
    return published_tables(base)


# --- Accepted ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["base", "line-breaks-mixed"])
def test_accepted_with_the_base_figures(tmp_path: Path, case: str) -> None:
    pipeline = case_pipeline(tmp_path, case)
    result = pipeline.run(as_of=AS_OF)
    assert result.success
    assert orders(pipeline) == BASE_ORDERS
    assert customers(pipeline) == BASE_CUSTOMERS
    assert query(pipeline, "select count(*) as n from staging.rejected_rows") == [{"n": 0}]


def test_free_item(tmp_path: Path) -> None:
    # order 3 gets a free item (250.00 at discount 1): 2 items of 2 products, still 90.00;
    # customer 2 keeps 90.00 (avg 45.00) and has bought 2 items.
    pipeline = case_pipeline(tmp_path, "free-item")
    assert pipeline.run(as_of=AS_OF).success
    assert orders(pipeline) == [
        BASE_ORDERS[0], BASE_ORDERS[1], (3, 2, 2, Decimal("90.00"), "Pending", None),
        BASE_ORDERS[3],
    ]  # fmt: skip
    assert customers(pipeline) == [BASE_CUSTOMERS[0], (*BASE_CUSTOMERS[1][:7], 2,
                                                       *BASE_CUSTOMERS[1][8:])]  # fmt: skip
    assert query(pipeline, "select list_price, discount from staging.stg_order_items "
                           "where order_id = 3 and item_id = 2") == [
        {"list_price": Decimal("250.00"), "discount": Decimal("1")}
    ]  # fmt: skip
    assert query(pipeline, "select count(*) as n from staging.rejected_rows") == [{"n": 0}]


def test_returns(tmp_path: Path) -> None:
    # A return line for order 2 (quantity -1): 1 of the 5 lines (20%, above the default
    # BIKE_MAX_REJECTED_SHARE of 1%), yet no fault.
    pipeline = case_pipeline(tmp_path, "returns")
    result = pipeline.run(as_of=AS_OF)
    assert result.success
    assert query(pipeline, "select order_id, item_id, quantity from staging.stg_order_items "
                           "where quantity <= 0") == [
        {"order_id": 2, "item_id": 2, "quantity": -1}
    ]  # fmt: skip
    assert orders(pipeline) == BASE_ORDERS  # order 2: 1 item, 1471.55
    assert customers(pipeline) == BASE_CUSTOMERS
    assert query(pipeline, "select count(*) as n from staging.rejected_rows") == [{"n": 0}]
    check = check_results(result)["stg_order_items/lines_not_counted"]
    assert (check.passed, check.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert check.metadata["failing_rows"].value == 1


def test_required_date_missing(tmp_path: Path) -> None:
    # order 2 shipped 2016-02-05 without a required date: Unknown, 4 days to ship.
    pipeline = case_pipeline(tmp_path, "required-date-missing")
    result = pipeline.run(as_of=AS_OF)
    assert result.success
    assert orders(pipeline) == [
        BASE_ORDERS[0], (2, 1, 1, Decimal("1471.55"), "Unknown", 4), *BASE_ORDERS[2:],
    ]  # fmt: skip
    assert customers(pipeline) == BASE_CUSTOMERS
    check = check_results(result)["orders_enriched/delivery_dates_known"]
    assert (check.passed, check.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert [row["order_id"] for row in sample_rows(check.metadata)] == ["2"]


# --- Refused ----------------------------------------------------------------------------------

REFUSED = [
    (
        "id-exponent",
        "{raw}/customers.csv line 3 (customer_id=2e0), column customer_id: value '2e0'; "
        "expected a whole number written as digits with an optional sign (no decimal point, "
        "exponent, spaces or other characters)",
    ),
    (
        "line-breaks-cr-only",
        "{raw}/stores.csv line 1: line breaks that are a carriage return alone (CR, as old Mac "
        "programs write them); expected CRLF or LF line breaks",
    ),
    (
        "money-overflow",
        "{raw}/order_items.csv line 3 (order_id=1, item_id=2), columns quantity and list_price: "
        "the line's net price list_price x quantity x (1 - discount) = 9999999.99 x 2000000000 x "
        "(1 - 0.07) = 18599999981400000.00 does not fit DECIMAL(18,2); expected at most "
        "9999999999999999.99 in absolute value",
    ),
    (
        "price-too-precise",
        "{raw}/order_items.csv line 2 (order_id=1, item_id=1), column list_price: value "
        "'599.990000001'; expected at most 2 decimals (a value is never rounded)",
    ),
    (
        "utf16-no-bom",
        "{raw}/stores.csv line 1: not UTF-8: the file holds NUL bytes (00) between its "
        "characters, as UTF-16 (little endian) text without a byte-order mark does; expected "
        "a UTF-8 export (re-export as UTF-8)",
    ),
]


@pytest.mark.parametrize(("case", "message"), REFUSED)
def test_refused_naming_file_line_and_cause_and_nothing_published(
    base: Pipeline,
    base_tables: dict[str, pd.DataFrame],
    tmp_path: Path,
    case: str,
    message: str,
) -> None:
    pipeline = case_pipeline(tmp_path, case, warehouse=base.warehouse)
    assert_tables_equal(published_tables(pipeline), base_tables)
    result = pipeline.run(as_of=AS_OF)
    assert failure(result) == message.format(raw=pipeline.raw_dir)
    assert_tables_equal(published_tables(pipeline), base_tables)
    # No NUL byte reaches the run's log (the UTF-16 file holds one every other byte).
    logged = [event.message or "" for event in result.all_events]
    assert not [text for text in [*logged, failure(result)] if "\x00" in text]


def test_a_warehouse_out_of_memory_is_not_blamed_on_the_export(
    base: Pipeline, base_tables: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    pipeline = case_pipeline(tmp_path, "base", warehouse=base.warehouse)
    result = pipeline.with_env(BIKE_DUCKDB_MEMORY_LIMIT="2MB").run(as_of=AS_OF)
    message = failure(result)
    assert message.startswith(
        f"The warehouse failed while reading {pipeline.raw_dir}/customers.csv: Out of Memory Error"
    )
    assert f"The warehouse is BIKE_DUCKDB_PATH={pipeline.warehouse} " in message
    assert "the export is not at fault" in message
    assert_tables_equal(published_tables(pipeline), base_tables)


# --- The kinds of the old bad-input suite, through the pipeline (ported) ---------------------


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [pytest.param(name, content, message, id=case) for case, name, content, message in
     STRUCTURAL_FAULTS],
)  # fmt: skip
def test_structural_fault_fails_the_run_and_publishes_nothing(
    tiny_published: Pipeline,
    tmp_path: Path,
    name: str,
    content: bytes | list[str] | None,
    message: str,
) -> None:
    published = published_tables(tiny_published)
    raw_dir = write_export(tmp_path / "raw", {n: r for n, r in TINY_EXPORT.items() if n != name})
    if isinstance(content, bytes):
        (raw_dir / name).write_bytes(content)
    elif content is not None:
        write_export(raw_dir, {name: content})
    shutil.copy(tiny_published.warehouse, tmp_path / "warehouse.duckdb")
    pipeline = Pipeline(tmp_path / "warehouse.duckdb", raw_dir)
    assert failure(pipeline.run()) == message.format(raw=raw_dir)
    assert_tables_equal(published_tables(pipeline), published)
