"""Bad input: a corpus of malformed exports, each refused with a clear error or quarantined.

Every case starts from the warehouse of a good run on TINY_EXPORT (copied), changes one file of
the export, runs daily_refresh and compares every table with the good run's.
"""

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from bike_assets.generate import generate_export
from bike_assets.settings import Settings
from bike_assets_tests.conftest import (
    HEADERS,
    TINY_EXPORT,
    Pipeline,
    assert_tables_equal,
    check_results,
    published_tables,
    query,
    staged_tables,
    write_export,
)

BOM = b"\xef\xbb\xbf"
Changes = Mapping[str, Sequence[str] | bytes | None]  # rows, raw bytes, or None: file left out


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    """A warehouse after a good run on TINY_EXPORT."""
    folder = tmp_path_factory.mktemp("good")
    pipeline = Pipeline(
        Settings(
            duckdb_path=str(folder / "warehouse.duckdb"),
            raw_dir=str(write_export(folder / "raw", TINY_EXPORT)),
            pii_key="test-key",
            lock_timeout_seconds=2,
        )
    )
    assert pipeline.run().success
    return pipeline


@pytest.fixture(scope="module")
def good_tables(good: Pipeline) -> dict[str, pd.DataFrame]:
    return published_tables(good)


def csv_bytes(header: str, rows: Sequence[str], newline: str = "\n", bom: bool = False) -> bytes:
    return (BOM if bom else b"") + newline.join([header, *rows, ""]).encode()


def run_case(
    good: Pipeline, folder: Path, changes: Changes, **settings: object
) -> tuple[Pipeline, dg.ExecuteInProcessResult]:
    """Run on a copy of the good warehouse, with TINY_EXPORT changed as `changes` says."""
    raw_dir = folder / "raw"
    files = {name: changes.get(name, rows) for name, rows in TINY_EXPORT.items()}
    write_export(raw_dir, {name: rows for name, rows in files.items() if isinstance(rows, list)})
    for name, content in files.items():
        if isinstance(content, bytes):
            (raw_dir / name).write_bytes(content)
    shutil.copy(good.settings.duckdb_path, folder / "warehouse.duckdb")
    pipeline = Pipeline(
        replace(good.settings, duckdb_path=str(folder / "warehouse.duckdb"), raw_dir=str(raw_dir))
    )
    pipeline = Pipeline(replace(pipeline.settings, **settings))
    return pipeline, pipeline.run()


def failure(result: dg.ExecuteInProcessResult) -> str:
    """The description of the run's one step failure."""
    assert not result.success
    [failed] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return failed.event_specific_data.user_failure_data.description


ORDER_COLUMNS = (
    "order_id, customer_id, order_status, order_date, required_date, shipped_date, store_id, "
    "staff_id"
)
ITEM_COLUMNS = "order_id, item_id, product_id, quantity, list_price, discount"
CUSTOMER_COLUMNS = "customer_id, first_name, last_name, phone, email, street, city, state, zip_code"
ORDERS, ITEMS, CUSTOMERS = (
    TINY_EXPORT[f] for f in ("orders.csv", "order_items.csv", "customers.csv")
)

# (case, changes to TINY_EXPORT, the failure's description with {raw} for the export folder).
# Lines count from the header (line 1): TINY_EXPORT's order 2 is line 3 of orders.csv, its
# order line (2, 1) line 4 of order_items.csv, customer 3 line 4 of customers.csv.
STRUCTURAL_FAULTS = [
    (
        "missing file",
        {"stores.csv": None},
        "{raw}/stores.csv: file is missing; expected the export's stores.csv with columns "
        "store_id, store_name, phone, email, street, city, state, zip_code",
    ),
    (
        "missing required column",
        {
            "customers.csv": csv_bytes(
                "customer_id,first_name,last_name,phone,street,city,state,zip_code",
                [",".join(row.split(",")[:4] + row.split(",")[5:]) for row in CUSTOMERS],
            )
        },
        "{raw}/customers.csv line 1: column email is missing from the header (customer_id, "
        "first_name, last_name, phone, street, city, state, zip_code); expected columns "
        + CUSTOMER_COLUMNS,
    ),
    (
        "not UTF-8 in a later line",
        {
            "customers.csv": csv_bytes(HEADERS["customers.csv"], CUSTOMERS[:2])
            + "3,José,Quenby,NULL,jose@msn.com,1 Main St,Houston,TX,07001\n".encode("latin-1")
        },
        "{raw}/customers.csv line 4, column first_name: not valid UTF-8; expected a UTF-8 "
        "export (re-export as UTF-8)",
    ),
    (
        "not UTF-8 from the header",
        {"orders.csv": "\n".join([HEADERS["orders.csv"], *ORDERS]).encode("utf-16")},
        # UTF-16 starts with the byte-order mark FF FE: byte 1 is not UTF-8.
        "{raw}/orders.csv line 1: not UTF-8 (byte 1 of the header); expected a UTF-8 CSV export",
    ),
    (
        "a field missing",
        {"orders.csv": [ORDERS[0], "2,1,4,2024-02-01,2024-02-03,2024-02-05,2", ORDERS[2]]},
        "{raw}/orders.csv line 3, column staff_id: missing, the row has 7 fields; expected 8 "
        f"fields ({ORDER_COLUMNS})",
    ),
    (
        "unquoted price 12,99abc: a field too many",
        {"order_items.csv": [*ITEMS[:2], "2,1,12,2,12,99abc,0.05", ITEMS[3]]},
        "{raw}/order_items.csv line 4, after column discount: the row has 7 fields; expected 6 "
        f"fields ({ITEM_COLUMNS})",
    ),
    (
        "price 12,99abc",
        {"order_items.csv": [*ITEMS[:2], '2,1,12,2,"12,99abc",0.05', ITEMS[3]]},
        "{raw}/order_items.csv line 4, column list_price: value '12,99abc'; expected a decimal "
        "number such as 12.99",
    ),
    (
        "date 2018-02-30",
        {"orders.csv": [ORDERS[0], "2,1,4,2018-02-30,2024-02-03,2024-02-05,2,6", ORDERS[2]]},
        "{raw}/orders.csv line 3, column order_date: value '2018-02-30'; expected a date "
        "written YYYY-MM-DD",
    ),
    (
        "order_status 7",
        {"orders.csv": [ORDERS[0], "2,1,7,2024-02-01,2024-02-03,2024-02-05,2,6", ORDERS[2]]},
        "{raw}/orders.csv line 3 (order_id=2), column order_status: value 7; expected 1 "
        "(Pending), 2 (Processing), 3 (Rejected) or 4 (Completed)",
    ),
    (
        "empty file",
        {"orders.csv": b""},
        f"{{raw}}/orders.csv: file is empty; expected a header row with {ORDER_COLUMNS}",
    ),
    (
        "header but no rows",
        {"orders.csv": []},
        "{raw}/orders.csv: file has a header but no rows; expected at least one row",
    ),
    # DuckDB alone would read 1.5 as 2 and 2024/01/02 as a date: the contract refuses them.
    (
        "quantity 1.5",
        {"order_items.csv": ["1,1,10,1.5,0.15,0.10", *ITEMS[1:]]},
        "{raw}/order_items.csv line 2 (order_id=1, item_id=1), column quantity: value 1.5; "
        "expected a whole number",
    ),
    (
        "date 2024/01/02",
        {"orders.csv": ["1,1,4,2024-01-01,2024-01-03,2024/01/02,1,2", *ORDERS[1:]]},
        "{raw}/orders.csv line 2, column shipped_date: value '2024/01/02'; expected a date "
        "written YYYY-MM-DD",
    ),
    (
        "price with three decimals",
        {"order_items.csv": [*ITEMS[:2], "2,1,12,2,100.005,0.05", ITEMS[3]]},
        "{raw}/order_items.csv line 4 (order_id=2, item_id=1), column list_price: value "
        "100.005; expected a number with at most 2 decimals",
    ),
    (
        "discount with seven decimals",  # DuckDB alone would round it to six
        {"order_items.csv": ["1,1,10,1,0.15,0.1234567", *ITEMS[1:]]},
        "{raw}/order_items.csv line 2 (order_id=1, item_id=1), column discount: value "
        "0.1234567; expected a number with at most 6 decimals",
    ),
    (
        "missing key",
        {"orders.csv": [ORDERS[0], "NULL,1,4,2024-02-01,2024-02-03,2024-02-05,2,6", ORDERS[2]]},
        "{raw}/orders.csv line 3 (order_id=NULL), column order_id: value NULL; expected a value",
    ),
    (
        "quote not closed",
        {
            "customers.csv": [
                CUSTOMERS[0],
                '2,Daryl,Spence,NULL,daryl@aol.com,"988 Pearl Lane ,Uniondale,NY,11553',
                CUSTOMERS[2],
            ]
        },
        "{raw}/customers.csv line 3, column street: a quoted value is not closed, or text "
        'follows its closing quote; expected "..." with any quote inside written twice',
    ),
    (
        "column twice in the header",
        {
            "stores.csv": csv_bytes(
                HEADERS["stores.csv"] + ",store_id", ["1,A,,,,,,,1", "2,B,,,,,,,2"]
            )
        },
        "{raw}/stores.csv line 1: column store_id appears more than once in the header; "
        "expected each column once",
    ),
    (
        "several faulty lines",
        {"order_items.csv": [f"1,{item},10,x,0.15,0.10" for item in range(1, 8)]},
        "\n".join(
            f"{{raw}}/order_items.csv line {line}, column quantity: value 'x'; expected a whole "
            "number"
            for line in range(2, 7)
        )
        + "\n... and 2 more faulty line(s)",  # 7 faulty lines, the first 5 quoted
    ),
]


@pytest.mark.parametrize(
    ("changes", "message"),
    [pytest.param(changes, message, id=case) for case, changes, message in STRUCTURAL_FAULTS],
)
def test_structural_fault_fails_naming_file_line_column_and_expectation(
    good: Pipeline,
    good_tables: dict[str, pd.DataFrame],
    tmp_path: Path,
    changes: Changes,
    message: str,
) -> None:
    pipeline, result = run_case(good, tmp_path, changes)
    assert failure(result) == message.format(raw=tmp_path / "raw")
    assert_tables_equal(published_tables(pipeline), good_tables)
    assert staged_tables(pipeline) == []  # refused before anything was written


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param(
            {
                "customers.csv": csv_bytes(
                    "customer_id,loyalty_card," + HEADERS["customers.csv"][12:] + ",notes",
                    [r.replace(",", ",LC-9,", 1) + ',"free, text"' for r in CUSTOMERS],
                )
            },
            id="extra columns",
        ),
        pytest.param(
            {
                "orders.csv": csv_bytes(
                    ",".join(reversed(HEADERS["orders.csv"].upper().split(","))),
                    [",".join(reversed(row.split(","))) for row in ORDERS],
                )
            },
            id="columns in another order, upper case",
        ),
        pytest.param(
            {
                name: csv_bytes(HEADERS[name], rows, newline="\r\n", bom=True)
                for name, rows in TINY_EXPORT.items()
            },
            id="CRLF and byte-order mark",
        ),
    ],
)
def test_export_variants_give_the_same_tables(
    good: Pipeline, good_tables: dict[str, pd.DataFrame], tmp_path: Path, changes: Changes
) -> None:
    pipeline, result = run_case(good, tmp_path, changes)
    assert result.success
    assert_tables_equal(published_tables(pipeline), good_tables)


# --- Row faults: quarantined -------------------------------------------------------------------

ANN = '4,Ann,Lee,NULL,ann.lee@{},"2 Elm St",Austin,TX,78701'
ROW_FAULTS = {
    "customers.csv": [
        *CUSTOMERS,  # lines 2-4
        ANN.format("aol.com"),  # 5: customer 4 ...
        ANN.format("gmail.com"),  # 6: ... again, another email: both quarantined
        CUSTOMERS[2],  # 7: customer 3 repeated identically: counts once
    ],
    "orders.csv": [
        *ORDERS,  # lines 2-4
        "4,99,4,2024-04-01,2024-04-03,2024-04-02,1,2",  # 5: customer 99 does not exist
        "5,1,4,2024-05-01,2024-05-03,2024-05-02,7,2",  # 6: store 7 does not exist
        "6,4,4,2024-06-01,2024-06-03,2024-06-02,1,2",  # 7: customer 4 is quarantined
    ],
    "order_items.csv": [
        *ITEMS,  # lines 2-5
        "9,1,14,1,10.00,0",  # 6: order 9 does not exist
        "4,1,15,1,20.00,0",  # 7: order 4 is quarantined (unknown customer)
        "6,1,16,1,30.00,0",  # 8: order 6 is quarantined (its customer is)
        "2,2,17,1,50.00,1.00",  # 9: discount 1
        "2,3,18,1,50.00,-0.05",  # 10: discount below 0
        "2,4,19,1,-100.00,0",  # 11: negative price
        "2,5,20,-2,100.00,0",  # 12: negative quantity
        "3,2,21,0,10.00,0",  # 13: quantity 0: kept, and ignored by orders_enriched
        ITEMS[3],  # 14: line (3, 1) repeated identically: counts once
        "3,3,22,1,5.00,0",  # 15: line (3, 3) ...
        "3,3,23,1,5.00,0",  # 16: ... again, another product: both quarantined
    ],
}
CONFLICT = "duplicate key with conflicting content"
CUST, ORD, ITEM = "customers.csv", "orders.csv", "order_items.csv"
REJECTED = [  # file, line, key, column_name, reason; ordered by file and line
    (CUST, 5, "customer_id=4", "customer_id", CONFLICT),
    (CUST, 6, "customer_id=4", "customer_id", CONFLICT),
    (ITEM, 6, "order_id=9, item_id=1", "order_id", "order_id 9 does not exist in orders.csv"),
    (ITEM, 7, "order_id=4, item_id=1", "order_id", "order_id 4 is quarantined in orders.csv"),
    (ITEM, 8, "order_id=6, item_id=1", "order_id", "order_id 6 is quarantined in orders.csv"),
    (ITEM, 9, "order_id=2, item_id=2", "discount", "discount 1 should be in [0, 1)"),
    (ITEM, 10, "order_id=2, item_id=3", "discount", "discount -0.05 should be in [0, 1)"),
    (ITEM, 11, "order_id=2, item_id=4", "list_price", "list_price -100 should be not negative"),
    (ITEM, 12, "order_id=2, item_id=5", "quantity", "quantity -2 should be not negative"),
    (ITEM, 15, "order_id=3, item_id=3", "order_id, item_id", CONFLICT),
    (ITEM, 16, "order_id=3, item_id=3", "order_id, item_id", CONFLICT),
    (ORD, 5, "order_id=4", "customer_id", "customer_id 99 does not exist in customers.csv"),
    (ORD, 6, "order_id=5", "store_id", "store_id 7 does not exist in stores.csv"),
    (ORD, 7, "order_id=6", "customer_id", "customer_id 4 is quarantined in customers.csv"),
]  # fmt: skip


def rejected_rows(pipeline: Pipeline) -> list[tuple]:
    return [
        tuple(row.values())
        for row in query(
            pipeline,
            "select file, line, key, column_name, reason from staging.rejected_rows "
            "order by file, line",
        )
    ]


@pytest.fixture(scope="module")
def quarantined(
    good: Pipeline, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Pipeline, dg.ExecuteInProcessResult]:
    # Shares rejected: customers 2 of 6, orders 3 of 6, order_items 11 of 15 (73%).
    return run_case(
        good, tmp_path_factory.mktemp("row_faults"), ROW_FAULTS, max_rejected_share=0.75
    )


def test_row_faults_are_quarantined_with_file_line_key_column_and_reason(
    quarantined: tuple[Pipeline, dg.ExecuteInProcessResult],
) -> None:
    pipeline, result = quarantined
    assert result.success
    assert rejected_rows(pipeline) == REJECTED


def test_quarantined_rows_are_reported_by_a_warn_check(
    quarantined: tuple[Pipeline, dg.ExecuteInProcessResult],
) -> None:
    _, result = quarantined
    check = check_results(result)["rejected_rows/no_rejected_rows"]
    assert (check.passed, check.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert check.metadata["failing_rows"].value == len(REJECTED)
    errors = [c for c in check_results(result).values() if c.severity.value == "ERROR"]
    assert all(c.passed for c in errors)


def test_quarantined_rows_are_missing_from_staging(
    quarantined: tuple[Pipeline, dg.ExecuteInProcessResult],
) -> None:
    pipeline, _ = quarantined
    ids = {
        table: [
            tuple(row.values())
            for row in query(pipeline, f"from {table} select {key} order by all")
        ]
        for table, key in (
            ("staging.stg_customers", "customer_id"),
            ("staging.stg_orders", "order_id"),
            ("staging.stg_order_items", "order_id, item_id, quantity"),
        )
    }
    assert ids == {
        "staging.stg_customers": [(1,), (2,), (3,)],  # 4 quarantined, 3 once
        "staging.stg_orders": [(1,), (2,), (3,)],  # 4, 5 and 6 quarantined
        # (3, 1) once, (3, 2) with quantity 0 kept, (3, 3) and (2, 2)-(2, 5) quarantined
        "staging.stg_order_items": [(1, 1, 1), (1, 2, 1), (2, 1, 2), (3, 1, 1), (3, 2, 0)],
    }


def test_quarantined_rows_leave_no_trace_in_the_other_tables(
    quarantined: tuple[Pipeline, dg.ExecuteInProcessResult], good_tables: dict[str, pd.DataFrame]
) -> None:
    # What is left is TINY_EXPORT plus a quantity-0 line, which orders_enriched ignores: every
    # table but rejected_rows and stg_order_items is the good run's.
    pipeline, _ = quarantined
    tables = published_tables(pipeline)
    changed = ("staging.rejected_rows", "staging.stg_order_items")
    assert_tables_equal(
        {name: frame for name, frame in tables.items() if name not in changed},
        {name: frame for name, frame in good_tables.items() if name not in changed},
    )


def test_line_numbers_count_blank_lines_and_line_breaks_inside_quotes(
    good: Pipeline, tmp_path: Path
) -> None:
    customers = csv_bytes(
        HEADERS["customers.csv"],
        [
            *CUSTOMERS[:2],  # lines 2, 3
            '3,Zyx,Quenby,NULL,zyx@msn.com,"1 Main St\r\nApt 2",Houston,TX,07001',  # 4 and 5
            "",  # 6
            CUSTOMERS[0].replace("Yahoo.com", "gmail.com"),  # 7: customer 1 again, conflicting
        ],
        newline="\r\n",
        bom=True,
    )
    # customers 2 of 4, orders 2 of 3, order_items 3 of 4 rows rejected
    pipeline, result = run_case(
        good, tmp_path, {"customers.csv": customers}, max_rejected_share=0.75
    )
    assert result.success
    assert rejected_rows(pipeline) == [
        (CUST, 2, "customer_id=1", "customer_id", CONFLICT),
        (CUST, 7, "customer_id=1", "customer_id", CONFLICT),
        # Cascade: customer 1's orders 1 and 2, and their lines.
        (ITEM, 2, "order_id=1, item_id=1", "order_id", "order_id 1 is quarantined in orders.csv"),
        (ITEM, 3, "order_id=1, item_id=2", "order_id", "order_id 1 is quarantined in orders.csv"),
        (ITEM, 4, "order_id=2, item_id=1", "order_id", "order_id 2 is quarantined in orders.csv"),
        (ORD, 2, "order_id=1", "customer_id", "customer_id 1 is quarantined in customers.csv"),
        (ORD, 3, "order_id=2", "customer_id", "customer_id 1 is quarantined in customers.csv"),
    ]  # fmt: skip
    # Customer 3's quoted line break is inside one value: the fields after it are in place.
    assert query(pipeline, "select customer_id, city from staging.stg_customers order by 1") == [
        {"customer_id": 2, "city": "Uniondale"},
        {"customer_id": 3, "city": "Houston"},
    ]


def test_line_numbers_in_an_export_read_in_parallel(good: Pipeline, tmp_path: Path) -> None:
    # 100k customers: order_items.csv (25 MB, 0.9M lines) and orders.csv are big enough for
    # DuckDB to read them in parallel, and to store their rows in no particular order.
    raw_dir = tmp_path / "raw"
    generate_export(raw_dir, 100_000, seed=3)

    def edit(name: str, line: int, column: int, value: bytes, extra: bytes = b"") -> int:
        """Set a field of a line (the header is line 1), add a line at the end if `extra`;
        return the last line's number."""
        lines = (raw_dir / name).read_bytes().split(b"\r\n")  # ends with "" after the last
        fields = lines[line - 1].split(b",")
        fields[column] = value
        lines[line - 1] = b",".join(fields)
        lines[-1:] = [extra, b""] if extra else [b""]
        (raw_dir / name).write_bytes(b"\r\n".join(lines))
        return len(lines) - 1

    def key(name: str, line: int) -> str:
        fields = (raw_dir / name).read_bytes().split(b"\r\n")[line - 1].split(b",")
        return f"order_id={int(fields[0])}, item_id={int(fields[1])}"

    added = edit("order_items.csv", 3, 3, b"-1", b"99999999,1,1,1,1.00,0")
    pipeline = Pipeline(replace(good.settings, duckdb_path=str(tmp_path / "w.duckdb")))
    result = pipeline.with_raw_dir(raw_dir).run()
    assert result.success
    assert rejected_rows(pipeline) == [
        (ITEM, 3, key(ITEM, 3), "quantity", "quantity -1 should be not negative"),
        (ITEM, added, "order_id=99999999, item_id=1", "order_id",
         "order_id 99999999 does not exist in orders.csv"),
    ]  # fmt: skip

    # A value that fails the run is named by its line too.
    edit("orders.csv", 5, 2, b"7")
    result = pipeline.with_raw_dir(raw_dir).run()
    order_id = int((raw_dir / "orders.csv").read_bytes().split(b"\r\n")[4].split(b",")[0])
    assert failure(result) == (
        f"{raw_dir}/orders.csv line 5 (order_id={order_id}), column order_status: value 7; "
        "expected 1 (Pending), 2 (Processing), 3 (Rejected) or 4 (Completed)"
    )


# --- The share of rejected rows ----------------------------------------------------------------

ORPHAN_LINE = {"order_items.csv": [*ITEMS, "9,1,14,1,10.00,0"]}  # line 6: order 9 is unknown


def test_too_many_rejected_rows_fail_the_run_naming_file_and_share(
    good: Pipeline, good_tables: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    pipeline, result = run_case(good, tmp_path, ORPHAN_LINE)  # default share 0.01
    # 1 of the 5 order lines is rejected: 20% > 1%.
    assert failure(result) == (
        "order_items.csv: 1 of 5 rows (20.00%) were quarantined, more than "
        "BIKE_MAX_REJECTED_SHARE=0.01. First: line 6 (order_id=9, item_id=1), column order_id: "
        "order_id 9 does not exist in orders.csv"
    )
    assert_tables_equal(published_tables(pipeline), good_tables)
    assert staged_tables(pipeline) == []


@pytest.mark.parametrize(("share", "succeeds"), [("0.2", True), ("0.19", False)])
def test_max_rejected_share_comes_from_the_environment(
    good: Pipeline,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    share: str,
    succeeds: bool,
) -> None:
    monkeypatch.setenv("BIKE_MAX_REJECTED_SHARE", share)  # 1 of 5 lines = 0.2 is not more
    pipeline, result = run_case(
        good, tmp_path, ORPHAN_LINE, max_rejected_share=Settings.from_env().max_rejected_share
    )
    assert result.success is succeeds
    if succeeds:
        assert rejected_rows(pipeline) == [REJECTED[2]]
