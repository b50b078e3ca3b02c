"""quarantine and check_rejected_share: which rows of the export are quarantined, with which
line and reason, and when a file has too many (docs/tables.md, "Raw input" and
"intermediate.orders_enriched").

Most tests read tiny exports with export.read into an in-memory DuckDB and call quarantine as
the staging asset does; the last ones run the whole pipeline, as the old bad-input suite did.
"""

import shutil
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pandas as pd
import pytest

from bike_assets.lib import export
from bike_assets.lib.export import RawExportError
from bike_assets.lib.quarantine import REJECTED, check_rejected_share, quarantine
from bike_assets.lib.warehouse import WarehouseError
from bike_assets.tools.generate import generate_export
from bike_assets_tests.conftest import (
    HEADERS,
    TINY_EXPORT,
    Pipeline,
    assert_tables_equal,
    check_results,
    published_tables,
    query,
    write_export,
)

BOM = b"\xef\xbb\xbf"
CONFLICT = "duplicate key with conflicting content"
CUST, ORD, ITEM = "customers.csv", "orders.csv", "order_items.csv"
ORDERS, ITEMS, CUSTOMERS = (TINY_EXPORT[f] for f in (ORD, ITEM, CUST))


def read_export(
    conn: duckdb.DuckDBPyConnection, folder: Path, changes: Mapping[str, Sequence[str] | bytes]
) -> dict[str, int]:
    """Write TINY_EXPORT changed as `changes` says (rows, or a file's bytes), read it as the
    staging asset does and quarantine its faulty rows; return the rows read per file."""
    write_export(folder, {name: changes.get(name, rows) for name, rows in TINY_EXPORT.items()
                          if not isinstance(changes.get(name), bytes)})  # fmt: skip
    for name, content in changes.items():
        if isinstance(content, bytes):
            (folder / name).write_bytes(content)
    rows_read = {spec.name: export.read(conn, folder, spec) for spec in export.EXPORT}
    quarantine(conn, folder, rows_read)
    return rows_read


def rejected(conn: duckdb.DuckDBPyConnection) -> list[tuple]:
    return conn.execute(
        f"select file, line, key, column_name, reason from {REJECTED} order by file, line"
    ).fetchall()


def keys(conn: duckdb.DuckDBPyConnection, table: str, columns: str) -> list[tuple]:
    return conn.execute(f"select {columns} from work.{table} order by all").fetchall()


# --- Row faults: quarantined (ported from the old bad-input suite) ----------------------------

ANN = '4,Ann,Lee,NULL,ann.lee@{},"2 Elm St",Austin,TX,78701'
ROW_FAULTS = {
    CUST: [
        *CUSTOMERS,  # lines 2-4
        ANN.format("aol.com"),  # 5: customer 4 ...
        ANN.format("gmail.com"),  # 6: ... again, another email: both quarantined
        CUSTOMERS[2],  # 7: customer 3 repeated identically: counts once
    ],
    ORD: [
        *ORDERS,  # lines 2-4
        "4,99,4,2024-04-01,2024-04-03,2024-04-02,1,2",  # 5: customer 99 does not exist
        "5,1,4,2024-05-01,2024-05-03,2024-05-02,7,2",  # 6: store 7 does not exist
        "6,4,4,2024-06-01,2024-06-03,2024-06-02,1,2",  # 7: customer 4 is quarantined
    ],
    ITEM: [
        *ITEMS,  # lines 2-5
        "9,1,14,1,10.00,0",  # 6: order 9 does not exist
        "4,1,15,1,20.00,0",  # 7: order 4 is quarantined (unknown customer)
        "6,1,16,1,30.00,0",  # 8: order 6 is quarantined (its customer is)
        "2,2,17,1,50.00,1.00",  # 9: discount 1, a free item: kept (changed: was quarantined)
        "2,3,18,1,50.00,-0.05",  # 10: discount below 0
        "2,4,19,1,-100.00,0",  # 11: negative price
        "2,5,20,-2,100.00,0",  # 12: a return: kept (changed: was quarantined)
        "3,2,21,0,10.00,0",  # 13: quantity 0: kept, and ignored by orders_enriched
        ITEMS[3],  # 14: line (3, 1) repeated identically: counts once
        "3,3,22,1,5.00,0",  # 15: line (3, 3) ...
        "3,3,23,1,5.00,0",  # 16: ... again, another product: both quarantined
    ],
}
REJECTED_ROWS = [  # file, line, key, column_name, reason; ordered by file and line
    (CUST, 5, "customer_id=4", "customer_id", CONFLICT),
    (CUST, 6, "customer_id=4", "customer_id", CONFLICT),
    (ITEM, 6, "order_id=9, item_id=1", "order_id", "order_id 9 does not exist in orders.csv"),
    (ITEM, 7, "order_id=4, item_id=1", "order_id", "order_id 4 is quarantined in orders.csv"),
    (ITEM, 8, "order_id=6, item_id=1", "order_id", "order_id 6 is quarantined in orders.csv"),
    (ITEM, 10, "order_id=2, item_id=3", "discount", "discount -0.05 should be in [0, 1]"),
    # changed: the value as written, -100.00 (was -100)
    (ITEM, 11, "order_id=2, item_id=4", "list_price", "list_price -100.00 should be not negative"),
    (ITEM, 15, "order_id=3, item_id=3", "order_id, item_id", CONFLICT),
    (ITEM, 16, "order_id=3, item_id=3", "order_id, item_id", CONFLICT),
    (ORD, 5, "order_id=4", "customer_id", "customer_id 99 does not exist in customers.csv"),
    (ORD, 6, "order_id=5", "store_id", "store_id 7 does not exist in stores.csv"),
    (ORD, 7, "order_id=6", "customer_id", "customer_id 4 is quarantined in customers.csv"),
]  # fmt: skip


def test_row_faults_are_quarantined_with_file_line_key_column_and_reason(
    conn: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    rows_read = read_export(conn, tmp_path, ROW_FAULTS)
    assert rows_read == {CUST: 6, "stores.csv": 2, ORD: 6, ITEM: 15}
    assert rejected(conn) == REJECTED_ROWS
    # Shares quarantined: customers 2 of 6, orders 3 of 6, order lines 7 of 15 (46.67%).
    check_rejected_share(conn, rows_read, 0.5)
    with pytest.raises(RawExportError, match=r"^orders.csv: 3 of 6 rows \(50.00%\) were"):
        check_rejected_share(conn, rows_read, 0.49)


def test_quarantined_rows_are_removed_and_the_others_kept(
    conn: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    read_export(conn, tmp_path, ROW_FAULTS)
    assert keys(conn, "customers", "customer_id") == [(1,), (2,), (3,)]  # 4 out, 3 once
    assert keys(conn, "orders", "order_id") == [(1,), (2,), (3,)]  # 4, 5 and 6 out
    # (3, 1) once; the free item (2, 2), the return (2, 5) and quantity 0 (3, 2) kept
    assert keys(conn, "order_items", "order_id, item_id, quantity, discount::varchar") == [
        (1, 1, 1, "0.100000"), (1, 2, 1, "0.100000"), (2, 1, 2, "0.050000"),
        (2, 2, 1, "1.000000"), (2, 5, -2, "0.000000"), (3, 1, 1, "0.200000"),
        (3, 2, 0, "0.000000"),
    ]  # fmt: skip


def test_a_line_with_several_faults_is_one_rejected_row(
    conn: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    read_export(conn, tmp_path, {ITEM: [*ITEMS, "2,6,24,1,-1.50,1.000001"]})
    assert rejected(conn) == [
        (ITEM, 6, "order_id=2, item_id=6", "discount, list_price",
         "discount 1.000001 should be in [0, 1]; list_price -1.50 should be not negative"),
    ]  # fmt: skip


def test_reasons_quote_values_as_written(conn: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    read_export(conn, tmp_path, {ITEM: [*ITEMS, "2,6,24,1,10.00,-0.050", "+9,1,14,1,10.00,0"]})
    assert rejected(conn) == [
        (ITEM, 6, "order_id=2, item_id=6", "discount", "discount -0.050 should be in [0, 1]"),
        (ITEM, 7, "order_id=9, item_id=1", "order_id", "order_id +9 does not exist in orders.csv"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("line", "values"),
    [
        ("2,6,24,-1,10.00,0", (-1, "0", "10")),  # a return
        ("2,6,24,0,10.00,0", (0, "0", "10")),  # a cancelled line
        ("2,6,24,-2147483648,0.01,0", (-(2**31), "0", "0.01")),
        ("2,6,24,1,10.00,1", (1, "1", "10")),  # a free item
        ("2,6,24,1,10.00,1.000000", (1, "1", "10")),
        ("2,6,24,1,0.00,0", (1, "0", "0")),  # a gift
    ],
)
def test_returns_free_items_and_gifts_are_no_faults(
    conn: duckdb.DuckDBPyConnection, tmp_path: Path, line: str, values: tuple[int, str, str]
) -> None:
    rows_read = read_export(conn, tmp_path, {ITEM: [*ITEMS, line]})
    assert rejected(conn) == []
    quantity, discount, list_price = values
    assert conn.execute(
        "select quantity, discount, list_price from work.order_items "
        "where order_id = 2 and item_id = 6"
    ).fetchall() == [(quantity, Decimal(discount), Decimal(list_price))]
    check_rejected_share(conn, rows_read, 0.0)  # nothing quarantined: no share at all


def test_returns_never_count_toward_the_rejected_share(
    conn: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    # 5 returns or cancelled lines out of 9: none quarantined, none counted.
    returns = [f"3,{n},{20 + n},{q},10.00,0" for n, q in enumerate((-1, 0, -2, 0, -3), start=2)]
    rows_read = read_export(conn, tmp_path, {ITEM: [*ITEMS, *returns]})
    assert rejected(conn) == []
    check_rejected_share(conn, rows_read, 0.0)
    assert keys(conn, "order_items", "count(*) filter (quantity <= 0)") == [(5,)]


def test_line_numbers_count_blank_lines_and_line_breaks_inside_quotes(
    conn: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    # (Ported.)
    customers = (
        BOM
        + "\r\n".join(
            [
                HEADERS[CUST],
                *CUSTOMERS[:2],  # lines 2, 3
                '3,Zyx,Quenby,NULL,zyx@msn.com,"1 Main St\r\nApt 2",Houston,TX,07001',  # 4 and 5
                "",  # 6
                CUSTOMERS[0].replace("Yahoo.com", "gmail.com"),  # 7: customer 1 again, conflicting
                "",
            ]
        ).encode()
    )
    rows_read = read_export(conn, tmp_path, {CUST: customers})
    assert rejected(conn) == [
        (CUST, 2, "customer_id=1", "customer_id", CONFLICT),
        (CUST, 7, "customer_id=1", "customer_id", CONFLICT),
        # Cascade: customer 1's orders 1 and 2, and their lines.
        (ITEM, 2, "order_id=1, item_id=1", "order_id", "order_id 1 is quarantined in orders.csv"),
        (ITEM, 3, "order_id=1, item_id=2", "order_id", "order_id 1 is quarantined in orders.csv"),
        (ITEM, 4, "order_id=2, item_id=1", "order_id", "order_id 2 is quarantined in orders.csv"),
        (ORD, 2, "order_id=1", "customer_id", "customer_id 1 is quarantined in customers.csv"),
        (ORD, 3, "order_id=2", "customer_id", "customer_id 1 is quarantined in customers.csv"),
    ]  # fmt: skip
    assert rows_read[CUST] == 4
    # Customer 3's quoted line break is inside one value: the fields after it are in place.
    assert keys(conn, "customers", "customer_id, street, city") == [
        (2, "988 Pearl Lane ", "Uniondale"),
        (3, "1 Main St\r\nApt 2", "Houston"),
    ]


def test_line_numbers_in_an_export_read_in_parallel(
    conn: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    # (Ported.) 100k customers: order_items.csv (25 MB, 0.9M lines) is big enough for DuckDB
    # to read it in parallel, and to store its rows in no particular order. Changed: the
    # faulty line is a discount above 1 (a negative quantity is no fault any more).
    raw_dir = tmp_path / "raw"
    generate_export(raw_dir, 100_000, seed=3)
    path = raw_dir / ITEM
    lines = path.read_bytes().split(b"\r\n")  # ends with "" after the last
    fields = lines[2].split(b",")  # line 3
    fields[5] = b"1.5"
    lines[2] = b",".join(fields)
    lines[-1:] = [b"99999999,1,1,1,1.00,0", b""]
    path.write_bytes(b"\r\n".join(lines))
    rows_read = {spec.name: export.read(conn, raw_dir, spec) for spec in export.EXPORT}
    quarantine(conn, raw_dir, rows_read)
    key = f"order_id={int(fields[0])}, item_id={int(fields[1])}"
    assert rejected(conn) == [
        (ITEM, 3, key, "discount", "discount 1.5 should be in [0, 1]"),
        (ITEM, len(lines) - 1, "order_id=99999999, item_id=1", "order_id",
         "order_id 99999999 does not exist in orders.csv"),
    ]  # fmt: skip


# --- The share of rejected rows ----------------------------------------------------------------

ORPHAN_LINE = {ITEM: [*ITEMS, "9,1,14,1,10.00,0"]}  # line 6: order 9 is unknown


@pytest.mark.parametrize(("share", "passes"), [(0.2, True), (0.19, False), (0.01, False)])
def test_the_share_of_quarantined_rows_is_of_each_file(
    conn: duckdb.DuckDBPyConnection, tmp_path: Path, share: float, passes: bool
) -> None:
    rows_read = read_export(conn, tmp_path, ORPHAN_LINE)  # 1 of 5 lines: 0.2 is not more
    if passes:
        check_rejected_share(conn, rows_read, share)
        return
    with pytest.raises(RawExportError) as raised:
        check_rejected_share(conn, rows_read, share)
    assert raised.value.description == (
        f"order_items.csv: 1 of 5 rows (20.00%) were quarantined, more than "
        f"BIKE_MAX_REJECTED_SHARE={share:g}. First: line 6 (order_id=9, item_id=1), column "
        "order_id: order_id 9 does not exist in orders.csv"
    )


# --- Errors of the warehouse are not the export's --------------------------------------------


class FullDisk:
    """A connection whose temp tables cannot be written, as on a full disk."""

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self.conn = conn

    def execute(self, sql: str, *args: Any) -> duckdb.DuckDBPyConnection:
        if sql.startswith("create or replace table work.faults_order_items"):
            raise duckdb.IOException("IO Error: Could not write to /tmp/x.tmp: No space left")
        return self.conn.execute(sql, *args)


def test_a_full_disk_while_quarantining_is_a_warehouse_error(
    conn: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    write_export(tmp_path, TINY_EXPORT)
    rows_read = {spec.name: export.read(conn, tmp_path, spec) for spec in export.EXPORT}
    with pytest.raises(WarehouseError) as raised:
        quarantine(FullDisk(conn), tmp_path, rows_read)  # type: ignore[arg-type]
    assert raised.value.description == (
        "The warehouse failed while quarantining the export's faulty rows: IO Error: Could not "
        "write to /tmp/x.tmp: No space left. The warehouse is BIKE_DUCKDB_PATH (here an "
        "in-memory database); the export is not at fault. Free disk space, check that the "
        "warehouse's folder is writable, or raise BIKE_DUCKDB_MEMORY_LIMIT, then run again."
    )


# --- Through the pipeline (ported) ------------------------------------------------------------


def failure(result: dg.ExecuteInProcessResult) -> str:
    """The description of the run's one step failure."""
    assert not result.success
    [failed] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return failed.event_specific_data.user_failure_data.description


@pytest.fixture(scope="module")
def good_tables(tiny_published: Pipeline) -> dict[str, pd.DataFrame]:
    return published_tables(tiny_published)


def run_case(
    base: Pipeline, folder: Path, changes: Mapping[str, Sequence[str]], **env: str
) -> tuple[Pipeline, dg.ExecuteInProcessResult]:
    """Run on a copy of the good warehouse `base`, with TINY_EXPORT changed as `changes` says."""
    raw_dir = write_export(folder / "raw", {**TINY_EXPORT, **changes})
    shutil.copy(base.warehouse, folder / "warehouse.duckdb")
    pipeline = Pipeline(folder / "warehouse.duckdb", raw_dir).with_env(**env)
    return pipeline, pipeline.run()


@pytest.fixture(scope="module")
def quarantined(
    tiny_published: Pipeline, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Pipeline, dg.ExecuteInProcessResult]:
    return run_case(
        tiny_published,
        tmp_path_factory.mktemp("row_faults"),
        ROW_FAULTS,
        BIKE_MAX_REJECTED_SHARE="0.5",
    )


def test_a_run_publishes_the_quarantined_rows(
    quarantined: tuple[Pipeline, dg.ExecuteInProcessResult],
) -> None:
    pipeline, result = quarantined
    assert result.success
    assert [
        tuple(row.values())
        for row in query(
            pipeline,
            "select file, line, key, column_name, reason from staging.rejected_rows "
            "order by file, line",
        )
    ] == REJECTED_ROWS


def test_quarantined_rows_are_reported_by_a_warn_check(
    quarantined: tuple[Pipeline, dg.ExecuteInProcessResult],
) -> None:
    _, result = quarantined
    check = check_results(result)["rejected_rows/no_rejected_rows"]
    assert (check.passed, check.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert check.metadata["failing_rows"].value == len(REJECTED_ROWS)
    errors = [c for c in check_results(result).values() if c.severity.value == "ERROR"]
    assert all(c.passed for c in errors)


def test_quarantined_rows_leave_no_trace_in_the_other_tables(
    quarantined: tuple[Pipeline, dg.ExecuteInProcessResult], good_tables: dict[str, pd.DataFrame]
) -> None:
    # What is left is TINY_EXPORT plus a return and a quantity-0 line (ignored by
    # orders_enriched) and a free item (changed: now kept) in order 2 of customer 1: order 2
    # has 3 items of 2 products, still 190.00, and customer 1 bought 5 items instead of 4.
    pipeline, _ = quarantined
    tables = published_tables(pipeline)
    changed = (
        "staging.rejected_rows",
        "staging.stg_order_items",
        "intermediate.orders_enriched",
        "marts.customers_enriched",
    )
    assert_tables_equal(
        {name: frame for name, frame in tables.items() if name not in changed},
        {name: frame for name, frame in good_tables.items() if name not in changed},
    )
    orders, good_orders = (t["intermediate.orders_enriched"] for t in (tables, good_tables))
    expected = good_orders.copy()
    expected.loc[expected.order_id == 2, ["total_items", "unique_products"]] = [3, 2]
    pd.testing.assert_frame_equal(orders, expected)
    assert query(pipeline, "select total_order_net_price from intermediate.orders_enriched "
                           "where order_id = 2") == [{"total_order_net_price": 190}]  # fmt: skip
    customers, good_customers = (t["marts.customers_enriched"] for t in (tables, good_tables))
    expected = good_customers.copy()
    expected.loc[expected.customer_id == 1, "total_items_purchased"] = 5
    pd.testing.assert_frame_equal(customers, expected)


def test_too_many_rejected_rows_fail_the_run_naming_file_and_share(
    tiny_published: Pipeline, good_tables: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    pipeline, result = run_case(tiny_published, tmp_path, ORPHAN_LINE)  # default share 0.01
    # 1 of the 5 order lines is rejected: 20% > 1%.
    assert failure(result) == (
        "order_items.csv: 1 of 5 rows (20.00%) were quarantined, more than "
        "BIKE_MAX_REJECTED_SHARE=0.01. First: line 6 (order_id=9, item_id=1), column order_id: "
        "order_id 9 does not exist in orders.csv"
    )
    assert_tables_equal(published_tables(pipeline), good_tables)


@pytest.mark.parametrize(("share", "succeeds"), [("0.2", True), ("0.19", False)])
def test_max_rejected_share_comes_from_the_environment(
    tiny_published: Pipeline, tmp_path: Path, share: str, succeeds: bool
) -> None:
    pipeline, result = run_case(
        tiny_published, tmp_path, ORPHAN_LINE, BIKE_MAX_REJECTED_SHARE=share
    )
    assert result.success is succeeds
    if succeeds:
        assert query(pipeline, "select line, reason from staging.rejected_rows") == [
            {"line": 6, "reason": "order_id 9 does not exist in orders.csv"}
        ]
