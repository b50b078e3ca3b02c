"""export.read, one kind of bad input at a time, on tiny files written here (docs/tables.md,
"Raw input"): what is accepted and read exactly, and what is refused with which message.

Lines count from the header (line 1). Each file is read into an in-memory DuckDB with the
run's `work` schema, as the staging asset reads it into the run's candidate version.
"""

import re
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from bike_assets.lib import export
from bike_assets.lib.export import (
    CUSTOMERS,
    KINDS,
    ORDER_ITEMS,
    ORDERS,
    PLAIN_BYTES,
    STORES,
    RawExportError,
    RawFile,
)
from bike_assets.lib.sql import expand
from bike_assets.lib.warehouse import WarehouseError
from bike_assets.tools.generate import generate_export
from bike_assets_tests.conftest import HEADERS, TINY_EXPORT

BOM = b"\xef\xbb\xbf"
CUSTOMER_COLUMNS = "customer_id, first_name, last_name, phone, email, street, city, state, zip_code"
ORDER_COLUMNS = (
    "order_id, customer_id, order_status, order_date, required_date, shipped_date, store_id, "
    "staff_id"
)
ITEM_COLUMNS = "order_id, item_id, product_id, quantity, list_price, discount"
ORDERS_ROWS, ITEMS, CUSTOMER_ROWS = (
    TINY_EXPORT[f] for f in ("orders.csv", "order_items.csv", "customers.csv")
)
WHOLE = (
    "a whole number written as digits with an optional sign (no decimal point, exponent, "
    "spaces or other characters)"
)
DECIMAL = (
    "a decimal number written as digits with an optional sign and decimal point, such as "
    "12.99 (no exponent, spaces or thousands separators)"
)
UTF8 = "expected a UTF-8 export (re-export as UTF-8)"


def csv_bytes(
    name: str, rows: Sequence[str], newline: str = "\n", bom: bool = False, header: str = ""
) -> bytes:
    """A file of the export: its header (HEADERS unless given) and rows, each line ended."""
    return (BOM if bom else b"") + newline.join([header or HEADERS[name], *rows, ""]).encode()


def write(folder: Path, name: str, content: bytes | Sequence[str]) -> Path:
    """Write one file of the export into folder (rows: LF line breaks); return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    data = content if isinstance(content, bytes) else csv_bytes(name, content)
    (folder / name).write_bytes(data)
    return folder


def refusal(conn: duckdb.DuckDBPyConnection, folder: Path, spec: RawFile) -> str:
    """The description of the RawExportError export.read raises (never holding a NUL)."""
    with pytest.raises(RawExportError) as raised:
        export.read(conn, folder, spec)
    message = raised.value.description
    assert "\x00" not in message
    return message


def typed(conn: duckdb.DuckDBPyConnection, spec: RawFile, columns: str = "*") -> list[tuple]:
    return conn.execute(f"select {columns} from {spec.table} order by all").fetchall()


def customer(customer_id: str) -> str:
    return f"{customer_id},Ann,Doe,NULL,a@x.com,1 Main St,Town,NY,01234"


def item(list_price: str = "10.00", discount: str = "0", quantity: str = "1") -> str:
    return f"1,1,10,{quantity},{list_price},{discount}"


def order(order_date: str = "2024-01-01", status: str = "4") -> str:
    return f"1,1,{status},{order_date},2024-01-03,NULL,1,2"


# --- Faults of structure and values, ported from the old bad-input suite ---------------------
# (case, file, content, message with {raw} for the folder). Messages that the new contract
# changed: UTF-16 (named as such), values (quoted as written, the row's key given, the form
# expected), a missing value, a day that does not exist.

STRUCTURAL_FAULTS = [
    (
        "missing file",
        "stores.csv",
        None,
        "{raw}/stores.csv: file is missing; expected the export's stores.csv with columns "
        "store_id, store_name, phone, email, street, city, state, zip_code",
    ),
    (
        "missing required column",
        "customers.csv",
        csv_bytes(
            "customers.csv",
            [",".join(row.split(",")[:4] + row.split(",")[5:]) for row in CUSTOMER_ROWS],
            header="customer_id,first_name,last_name,phone,street,city,state,zip_code",
        ),
        "{raw}/customers.csv line 1: column email is missing from the header (customer_id, "
        "first_name, last_name, phone, street, city, state, zip_code); expected columns "
        + CUSTOMER_COLUMNS,
    ),
    (
        "not UTF-8 in a later line",
        "customers.csv",
        csv_bytes("customers.csv", CUSTOMER_ROWS[:2])
        + "3,José,Quenby,NULL,jose@msn.com,1 Main St,Houston,TX,07001\n".encode("latin-1"),
        f"{{raw}}/customers.csv line 4, column first_name: not valid UTF-8; {UTF8}",
    ),
    (
        "UTF-16 with its byte-order mark",  # changed: was "not UTF-8 (byte 1 of the header)"
        "orders.csv",
        "\n".join([HEADERS["orders.csv"], *ORDERS_ROWS]).encode("utf-16"),
        "{raw}/orders.csv line 1: not UTF-8: the file starts with the byte-order mark of UTF-16 "
        f"(little endian), FF FE; {UTF8}",
    ),
    (
        "a field missing",
        "orders.csv",
        [ORDERS_ROWS[0], "2,1,4,2024-02-01,2024-02-03,2024-02-05,2", ORDERS_ROWS[2]],
        "{raw}/orders.csv line 3, column staff_id: missing, the row has 7 fields; expected 8 "
        f"fields ({ORDER_COLUMNS})",
    ),
    (
        "unquoted price 12,99abc: a field too many",
        "order_items.csv",
        [*ITEMS[:2], "2,1,12,2,12,99abc,0.05", ITEMS[3]],
        "{raw}/order_items.csv line 4, after column discount: the row has 7 fields; expected 6 "
        f"fields ({ITEM_COLUMNS})",
    ),
    (
        "price 12,99abc",
        "order_items.csv",
        [*ITEMS[:2], '2,1,12,2,"12,99abc",0.05', ITEMS[3]],
        "{raw}/order_items.csv line 4 (order_id=2, item_id=1), column list_price: value "
        f"'12,99abc'; expected {DECIMAL}",
    ),
    (
        "date 2018-02-30",
        "orders.csv",
        [ORDERS_ROWS[0], "2,1,4,2018-02-30,2024-02-03,2024-02-05,2,6", ORDERS_ROWS[2]],
        "{raw}/orders.csv line 3 (order_id=2), column order_date: value '2018-02-30'; expected "
        "a real calendar day written YYYY-MM-DD",
    ),
    (
        "order_status 7",
        "orders.csv",
        [ORDERS_ROWS[0], "2,1,7,2024-02-01,2024-02-03,2024-02-05,2,6", ORDERS_ROWS[2]],
        "{raw}/orders.csv line 3 (order_id=2), column order_status: value '7'; expected 1 "
        "(Pending), 2 (Processing), 3 (Rejected) or 4 (Completed)",
    ),
    (
        "empty file",
        "orders.csv",
        b"",
        f"{{raw}}/orders.csv: file is empty; expected a header row with {ORDER_COLUMNS}",
    ),
    (
        "header but no rows",
        "orders.csv",
        [],
        "{raw}/orders.csv: file has a header but no rows; expected at least one row",
    ),
    (
        "quantity 1.5",
        "order_items.csv",
        ["1,1,10,1.5,0.15,0.10", *ITEMS[1:]],
        "{raw}/order_items.csv line 2 (order_id=1, item_id=1), column quantity: value '1.5'; "
        f"expected {WHOLE}",
    ),
    (
        "date 2024/01/02",
        "orders.csv",
        ["1,1,4,2024-01-01,2024-01-03,2024/01/02,1,2", *ORDERS_ROWS[1:]],
        "{raw}/orders.csv line 2 (order_id=1), column shipped_date: value '2024/01/02'; "
        "expected a date written YYYY-MM-DD",
    ),
    (
        "price with three decimals",
        "order_items.csv",
        [*ITEMS[:2], "2,1,12,2,100.005,0.05", ITEMS[3]],
        "{raw}/order_items.csv line 4 (order_id=2, item_id=1), column list_price: value "
        "'100.005'; expected at most 2 decimals (a value is never rounded)",
    ),
    (
        "discount with seven decimals",
        "order_items.csv",
        ["1,1,10,1,0.15,0.1234567", *ITEMS[1:]],
        "{raw}/order_items.csv line 2 (order_id=1, item_id=1), column discount: value "
        "'0.1234567'; expected at most 6 decimals (a value is never rounded)",
    ),
    (
        "missing key",
        "orders.csv",
        [ORDERS_ROWS[0], "NULL,1,4,2024-02-01,2024-02-03,2024-02-05,2,6", ORDERS_ROWS[2]],
        "{raw}/orders.csv line 3 (order_id=NULL), column order_id: no value (NULL or empty); "
        "expected a value",
    ),
    (
        "quote not closed",
        "customers.csv",
        [
            CUSTOMER_ROWS[0],
            '2,Daryl,Spence,NULL,daryl@aol.com,"988 Pearl Lane ,Uniondale,NY,11553',
            CUSTOMER_ROWS[2],
        ],
        "{raw}/customers.csv line 3, column street: a quoted value is not closed, or text "
        'follows its closing quote; expected "..." with any quote inside written twice',
    ),
    (
        "column twice in the header",
        "stores.csv",
        csv_bytes(
            "stores.csv", ["1,A,,,,,,,1", "2,B,,,,,,,2"], header=HEADERS["stores.csv"] + ",store_id"
        ),
        "{raw}/stores.csv line 1: column store_id appears more than once in the header; "
        "expected each column once",
    ),
    (
        "several faulty lines",
        "order_items.csv",
        [f"1,{item},10,x,0.15,0.10" for item in range(1, 8)],
        "\n".join(
            f"{{raw}}/order_items.csv line {line} (order_id=1, item_id={line - 1}), column "
            f"quantity: value 'x'; expected {WHOLE}"
            for line in range(2, 7)
        )
        + "\n... and 2 more faulty line(s)",  # 7 faulty lines, the first 5 quoted
    ),
]
SPECS = {spec.name: spec for spec in export.EXPORT}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [pytest.param(name, content, message, id=case) for case, name, content, message in
     STRUCTURAL_FAULTS],
)  # fmt: skip
def test_structural_faults_name_file_line_column_and_expectation(
    conn: duckdb.DuckDBPyConnection,
    tmp_path: Path,
    name: str,
    content: bytes | list[str] | None,
    message: str,
) -> None:
    tmp_path.mkdir(exist_ok=True)
    if content is not None:
        write(tmp_path, name, content)
    assert refusal(conn, tmp_path, SPECS[name]) == message.format(raw=tmp_path)


def test_a_file_that_cannot_be_opened_is_blamed(
    conn: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    (tmp_path / "stores.csv").mkdir()
    assert refusal(conn, tmp_path, STORES) == (
        f"{tmp_path}/stores.csv: file cannot be read (Is a directory); expected the export's "
        "stores.csv, readable"
    )


# --- Layouts that read the same -------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(
            csv_bytes(
                "customers.csv",
                [r.replace(",", ",LC-9,", 1) + ',"free, text"' for r in CUSTOMER_ROWS],
                header="customer_id,loyalty_card," + HEADERS["customers.csv"][12:] + ",notes",
            ),
            id="extra columns",
        ),
        pytest.param(
            csv_bytes(
                "customers.csv",
                [",".join(reversed(row.split(","))) for row in CUSTOMER_ROWS],
                header=",".join(reversed(HEADERS["customers.csv"].upper().split(","))),
            ),
            id="columns in another order, upper case",
        ),
        pytest.param(
            csv_bytes("customers.csv", CUSTOMER_ROWS, newline="\r\n", bom=True),
            id="CRLF and byte-order mark",
        ),
        pytest.param(
            csv_bytes("customers.csv", CUSTOMER_ROWS[:2], newline="\r\n", bom=True)
            + (CUSTOMER_ROWS[2] + "\n").encode(),
            id="CRLF then LF",
        ),
    ],
)
def test_export_variants_read_the_same_rows(
    conn: duckdb.DuckDBPyConnection, tmp_path: Path, content: bytes
) -> None:
    # (Ported: the old suite compared the published tables of a run; these are the rows the
    # staging tables are built from.)
    export.read(conn, write(tmp_path / "plain", "customers.csv", CUSTOMER_ROWS), CUSTOMERS)
    expected = typed(conn, CUSTOMERS)
    assert export.read(conn, write(tmp_path / "variant", "customers.csv", content), CUSTOMERS) == 3
    assert typed(conn, CUSTOMERS) == expected
    assert expected[2] == (3, "Zyx", "Quenby", None, "zyx@msn.com", "1 Main St", "Houston",
                           "TX", "07001")  # fmt: skip


# --- Whole numbers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("12", 12),
        ("+12", 12),
        ("-3", -3),
        ("007", 7),
        ('"12"', 12),  # quotes are the CSV's, not the value's
        ("9007199254740993", 9007199254740993),  # above 2^53: exact, never through a float
        ("9223372036854775807", 2**63 - 1),
        ("-9223372036854775808", -(2**63)),
    ],
)
def test_whole_numbers_are_read_exactly(
    conn: duckdb.DuckDBPyConnection, tmp_path: Path, written: str, value: int
) -> None:
    export.read(conn, write(tmp_path, "customers.csv", [customer(written)]), CUSTOMERS)
    assert typed(conn, CUSTOMERS, "customer_id") == [(value,)]


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("1e3", WHOLE),
        ("2e0", WHOLE),
        ("3.0", WHOLE),
        ("12.", WHOLE),
        ("0x10", WHOLE),
        ("0b1", WHOLE),
        ("1_000", WHOLE),
        ('"1,000"', WHOLE),
        (" 12", WHOLE),  # surrounding spaces are refused: the value is judged as written
        ("12 ", WHOLE),
        ("+", WHOLE),
        ("--1", WHOLE),
        ("1-2", WHOLE),
        ("\u0661\u0662", WHOLE),  # Arabic-Indic digits
        ("twelve", WHOLE),
        ("9223372036854775808", "a whole number from -9223372036854775808 to "
         "9223372036854775807 (BIGINT)"),
        ("-9223372036854775809", "a whole number from -9223372036854775808 to "
         "9223372036854775807 (BIGINT)"),
    ],
)  # fmt: skip
def test_whole_numbers_written_otherwise_are_refused_as_written(
    conn: duckdb.DuckDBPyConnection, tmp_path: Path, written: str, expected: str
) -> None:
    folder = write(tmp_path, "customers.csv", [customer("1"), customer(written)])
    value = written.strip('"')
    assert refusal(conn, folder, CUSTOMERS) == (
        f"{folder}/customers.csv line 3 (customer_id={value}), column customer_id: value "
        f"{value!r}; expected {expected}"
    )


def test_an_integer_column_refuses_what_does_not_fit_an_integer(
    conn: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    folder = write(tmp_path, "order_items.csv", [item(quantity="2147483648")])
    assert refusal(conn, folder, ORDER_ITEMS) == (
        f"{folder}/order_items.csv line 2 (order_id=1, item_id=1), column quantity: value "
        "'2147483648'; expected a whole number from -2147483648 to 2147483647 (INTEGER)"
    )
    export.read(conn, write(tmp_path, "order_items.csv", [item(quantity="-2147483648")]),
                ORDER_ITEMS)  # fmt: skip
    assert typed(conn, ORDER_ITEMS, "quantity") == [(-(2**31),)]


# --- Decimals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("list_price", "discount", "values"),
    [
        ("599.99", "0.20", (Decimal("599.99"), Decimal("0.2"))),
        ("1549", "1", (Decimal("1549"), Decimal("1"))),  # 1: a free item
        ("1549.0", "0", (Decimal("1549"), Decimal("0"))),
        (".5", "0.123456", (Decimal("0.5"), Decimal("0.123456"))),
        ("5.", "+0.05", (Decimal("5"), Decimal("0.05"))),
        ("+1.50", "0.999999", (Decimal("1.5"), Decimal("0.999999"))),
        ("12345678901.00", "0", (Decimal("12345678901"), Decimal("0"))),  # fits DECIMAL(18,2)
        ("9999999999999999.99", "0", (Decimal("9999999999999999.99"), Decimal("0"))),
    ],
)
def test_decimals_are_read_exactly(
    conn: duckdb.DuckDBPyConnection,
    tmp_path: Path,
    list_price: str,
    discount: str,
    values: tuple[Decimal, Decimal],
) -> None:
    export.read(conn, write(tmp_path, "order_items.csv", [item(list_price, discount)]),
                ORDER_ITEMS)  # fmt: skip
    assert typed(conn, ORDER_ITEMS, "list_price, discount") == [values]
    assert conn.execute(f"select typeof(list_price), typeof(discount) from {ORDER_ITEMS.table}")\
        .fetchone() == ("DECIMAL(18,2)", "DECIMAL(18,6)")  # fmt: skip


@pytest.mark.parametrize(
    ("column", "written", "expected"),
    [
        ("list_price", "1440.990000001", "at most 2 decimals (a value is never rounded)"),
        ("list_price", "599.999", "at most 2 decimals (a value is never rounded)"),
        ("list_price", "1.000", "at most 2 decimals (a value is never rounded)"),
        ("discount", "0.0700000001", "at most 6 decimals (a value is never rounded)"),
        ("discount", "0.9999999", "at most 6 decimals (a value is never rounded)"),  # not 1
        ("list_price", "12345678901234567.00", "at most 16 digits before the decimal point "
         "(DECIMAL(18,2))"),
        ("discount", "1234567890123.0", "at most 12 digits before the decimal point "
         "(DECIMAL(18,6))"),
        ("list_price", "1e2", DECIMAL),
        ("list_price", "1.2.3", DECIMAL),
        ("list_price", " 1.50", DECIMAL),
        ("list_price", "$1.50", DECIMAL),
        ("list_price", "NaN", DECIMAL),
        ("list_price", "inf", DECIMAL),
        ("discount", "5%", DECIMAL),
        ("discount", ".", DECIMAL),
    ],
)  # fmt: skip
def test_decimals_written_otherwise_are_refused_as_written(
    conn: duckdb.DuckDBPyConnection, tmp_path: Path, column: str, written: str, expected: str
) -> None:
    line = item(written, "0") if column == "list_price" else item("10.00", written)
    folder = write(tmp_path, "order_items.csv", [item(), line.replace("1,1,", "1,2,", 1)])
    assert refusal(conn, folder, ORDER_ITEMS) == (
        f"{folder}/order_items.csv line 3 (order_id=1, item_id=2), column {column}: value "
        f"{written!r}; expected {expected}"
    )


# --- Dates ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "day"),
    [
        ("1900-01-01", date(1900, 1, 1)),
        ("2199-12-31", date(2199, 12, 31)),
        ("2024-02-29", date(2024, 2, 29)),
    ],
)
def test_dates_of_1900_to_2199_are_read(
    conn: duckdb.DuckDBPyConnection, tmp_path: Path, written: str, day: date
) -> None:
    export.read(conn, write(tmp_path, "orders.csv", [order(written)]), ORDERS)
    assert typed(conn, ORDERS, "order_date") == [(day,)]


YEARS = "a day of the years 1900 to 2199 written YYYY-MM-DD"
REAL_DAY = "a real calendar day written YYYY-MM-DD"
FORM = "a date written YYYY-MM-DD"


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("0000-01-01", YEARS),  # DuckDB alone would read 1 BC
        ("1899-12-31", YEARS),
        ("2200-01-01", YEARS),
        ("2018-02-30", REAL_DAY),
        ("2023-02-29", REAL_DAY),
        ("2024-13-01", REAL_DAY),
        ("2024/01/02", FORM),
        ("2024-1-2", FORM),
        (" 2024-01-02", FORM),
        ("2024-01-02T00:00", FORM),
        ("20240102", FORM),
        ("12024-01-02", FORM),
    ],
)
def test_dates_written_otherwise_are_refused_as_written(
    conn: duckdb.DuckDBPyConnection, tmp_path: Path, written: str, expected: str
) -> None:
    folder = write(tmp_path, "orders.csv", [order(), order(written).replace("1,", "2,", 1)])
    assert refusal(conn, folder, ORDERS) == (
        f"{folder}/orders.csv line 3 (order_id=2), column order_date: value {written!r}; "
        f"expected {expected}"
    )


# --- The reader's fast tests accept only what the contract's rules accept -------------------

TRICKY = [
    "0", "7", "-0", "+0", "007", "12", "+12", "-12", "1e3", "1E3", "2e0", "1e-1", "3.0", "12.",
    ".5", "-.5", "+.5", "5.", ".", "-", "+", "+-1", "--1", "1-", "1+1", "0x10", "0X1F", "0b1",
    "0o7", "1_000", "1,000", " 12", "12 ", "\t12", "12\t", "1 2", "NULL1", "N",
    "\u0661\u0662", "\uff11\uff12",  # Arabic-Indic and full-width digits
    "nan", "inf", "-inf", "infinity", "1.2.3", "1..2", "12.34", "12.345", "0.123456",
    "0.1234567", "1.999999", "0.9999995", "9223372036854775807", "9223372036854775808",
    "-9223372036854775808", "-9223372036854775809", "2147483647", "2147483648",
    "9999999999999999.99", "10000000000000000.00", "999999999999.999999", "1000000000000.0",
    "00000000000000000000000001", "2024-01-02", "2024-1-02", "2024-01-2", "0000-01-01",
    "1899-12-31", "1900-01-01", "2199-12-31", "2200-01-01", "2018-02-30", "2024-02-29",
    "2023-02-29", "2024/01/02", "2024.01.02", "20240102", "2024-01-02 ", "2024-01-02T10:00",
    "+2024-01-02", "-2024-01-02", "12024-01-02", "2024--1-02", "2024-01--2", "2024-+1-02",
    "2024-01-02 (BC)", "epoch", "infinity", "-999-01-02", "1e3-01-01", "2024-1.-02",
    "2024-01-2.", "2024-.1-02", "+024-01-02", "2024-01-+2", "2024-N1-02", "1999-00-10",
    "1999-10-00", "-024-01-02", "2024-01-0-", "2024-1--02",
]  # fmt: skip


def _reference(kind: str, text: str) -> bool:
    """The contract, in Python: whether `text`, as written, is a value of `kind`."""
    if kind in ("BIGINT", "INTEGER"):
        bits = 63 if kind == "BIGINT" else 31
        return bool(re.fullmatch(r"[+-]?[0-9]+", text)) and -(2**bits) <= int(text) < 2**bits
    if kind.startswith("DECIMAL"):
        scale = int(kind[-2])
        form = re.fullmatch(r"[+-]?([0-9]*)(?:\.([0-9]*))?", text)
        if not form or not re.search("[0-9]", text):
            return False
        whole, decimals = form[1], form[2] or ""
        return len(decimals) <= scale and len(whole.lstrip("0")) <= 18 - scale
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        return False
    try:
        return 1900 <= date.fromisoformat(text).year <= 2199
    except ValueError:
        return False


def _reader_accepts(conn: duckdb.DuckDBPyConnection, kind: str, text: str, plain: bool) -> bool:
    try:
        conn.execute(f"select {KINDS[kind].guarded('c', True, plain)} from (select ? as c)", [text])
    except (duckdb.InvalidInputException, duckdb.ConversionException):
        return False
    return True


def _rules_accept(conn: duckdb.DuckDBPyConnection, kind: str, text: str) -> bool:
    bad = " or ".join(f"({rule.bad.format(c='c')})" for rule in KINDS[kind].rules)
    (broken,) = conn.execute(f"select {bad} from (select ?::varchar as c)", [text]).fetchone()
    return not broken


@pytest.mark.parametrize("kind", ["BIGINT", "INTEGER", "DECIMAL(18,2)", "DECIMAL(18,6)", "DATE"])
def test_the_readers_tests_and_the_rules_agree_with_the_contract(
    conn: duckdb.DuckDBPyConnection, kind: str
) -> None:
    # The reader's pass uses cheap tests (Kind.fast, and Kind.plain on files of PLAIN_BYTES
    # only), the messages the contract's rules: all three must agree with the contract.
    plain_text = [text for text in TRICKY if set(text.encode()) <= set(PLAIN_BYTES)]
    assert len(plain_text) > 50
    for text in TRICKY:
        expected = _reference(kind, text)
        assert _rules_accept(conn, kind, text) is expected, text
        assert _reader_accepts(conn, kind, text, plain=False) is expected, text
        if text in plain_text:
            assert _reader_accepts(conn, kind, text, plain=True) is expected, text


def test_a_faulty_value_is_named_in_a_file_of_plain_bytes_too(
    conn: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    folder = write(tmp_path, "order_items.csv", ["1,1,10,1,10.00,0", "1,2,10,1.0,10.00,0"])
    assert export.scan(folder / "order_items.csv", ORDER_ITEMS).plain
    assert refusal(conn, folder, ORDER_ITEMS) == (
        f"{folder}/order_items.csv line 3 (order_id=1, item_id=2), column quantity: value "
        f"'1.0'; expected {WHOLE}"
    )


# --- Line breaks ------------------------------------------------------------------------------

STORE_ROWS = TINY_EXPORT["stores.csv"]
STORE_HEADER = HEADERS["stores.csv"].encode()


def stores(*lines: bytes, end: bytes = b"\r\n") -> bytes:
    return end.join([STORE_HEADER, *lines]) + end


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(stores(*(r.encode() for r in STORE_ROWS), end=b"\n"), id="LF"),
        pytest.param(stores(*(r.encode() for r in STORE_ROWS)), id="CRLF"),
        pytest.param(
            STORE_HEADER + b"\r\n" + STORE_ROWS[0].encode() + b"\n" + STORE_ROWS[1].encode()
            + b"\r\n", id="CRLF, LF, CRLF",
        ),
        pytest.param(
            STORE_HEADER + b"\n" + STORE_ROWS[0].encode() + b"\n" + STORE_ROWS[1].encode()
            + b"\r\n", id="LF, then CRLF",
        ),
    ],
)  # fmt: skip
def test_crlf_lf_and_a_mix_are_accepted(
    conn: duckdb.DuckDBPyConnection, tmp_path: Path, content: bytes
) -> None:
    assert export.read(conn, write(tmp_path, "stores.csv", content), STORES) == 2
    assert typed(conn, STORES, "store_id, store_name, zip_code") == [
        (1, "Santa Cruz Bikes", "95060"),
        (2, "Baldwin Bikes", "11432"),
    ]


def test_line_breaks_inside_quoted_values_are_kept_as_written(
    conn: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    # A mixed file (CRLF and LF): read from a copy whose line breaks outside quotes are LF.
    content = (
        stores(
            b'1,A,NULL,NULL,"1 Main St\r\nApt 2",X,CA,1',
            b'2,B,NULL,NULL,"2 Main St\nApt 3",X,CA,2',
            b'3,C,NULL,NULL,"3 Main St\rApt 4",X,CA,3',  # a CR alone, inside quotes: the value's
            b'4,"D ""the"" shop",NULL,NULL,4 Main St,X,CA,4',
        )
        + b'5,E,NULL,NULL,"5 Main St\r\nApt 6",X,CA,5\n'
    )
    assert export.read(conn, write(tmp_path, "stores.csv", content), STORES) == 5
    assert typed(conn, STORES, "store_id, store_name, street") == [
        (1, "A", "1 Main St\r\nApt 2"),
        (2, "B", "2 Main St\nApt 3"),
        (3, "C", "3 Main St\rApt 4"),
        (4, 'D "the" shop', "4 Main St"),
        (5, "E", "5 Main St\r\nApt 6"),
    ]
    # Lines keep their numbers: stores 1, 2 and 5 span two lines each; the CR alone inside
    # store 3's quotes is no line break.
    conn.execute("drop table if exists work.stores")
    ordered = export.read_in_file_order(conn, tmp_path, STORES, "ordered")
    assert conn.execute(f"select line, store_id from {ordered}").fetchall() == [
        (2, "1"), (4, "2"), (6, "3"), (7, "4"), (8, "5"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(
            stores(*(r.encode() for r in STORE_ROWS), end=b"\r"),
            "line 1: line breaks that are a carriage return alone (CR, as old Mac programs "
            "write them); expected CRLF or LF line breaks",
            id="CR alone",
        ),
        pytest.param(
            stores(*(r.encode() for r in STORE_ROWS[:1]))
            + STORE_ROWS[1].encode() + b"\r\r\n",
            "line 3: the line ends with a doubled carriage return (CR CR LF); expected CRLF "
            "or LF line breaks",
            id="doubled CR",
        ),
        pytest.param(
            stores(b"1,Santa Cruz\rBikes,NULL,NULL,1 Main St,X,CA,1", STORE_ROWS[1].encode()),
            "line 2, column store_name: a carriage return (CR) not followed by LF, inside an "
            "unquoted value or as a line break of its own; expected CRLF or LF line breaks (a "
            "CR can only be part of a quoted value)",
            id="CR inside an unquoted value",
        ),
        pytest.param(
            stores(b'1,"A, B",NULL,NULL,"1 Main St",X,CA,1\r2,B,NULL,NULL,2 Main St,X,CA,2'),
            "line 2, column zip_code: a carriage return (CR) not followed by LF, inside an "
            "unquoted value or as a line break of its own; expected CRLF or LF line breaks (a "
            "CR can only be part of a quoted value)",
            id="a line break of CR alone among CRLF",
        ),
        pytest.param(
            stores(STORE_ROWS[0].encode()) + STORE_ROWS[1].encode() + b"\r",
            "line 3: line breaks that are a carriage return alone (CR, as old Mac programs "
            "write them); expected CRLF or LF line breaks",
            id="CR alone at the end",
        ),
    ],
)  # fmt: skip
def test_a_carriage_return_alone_is_refused_naming_line_and_cause(
    conn: duckdb.DuckDBPyConnection, tmp_path: Path, content: bytes, message: str
) -> None:
    folder = write(tmp_path, "stores.csv", content)
    assert refusal(conn, folder, STORES) == f"{folder}/stores.csv {message}"


# --- Encodings --------------------------------------------------------------------------------

STORES_TEXT = "\r\n".join([HEADERS["stores.csv"], *STORE_ROWS, ""])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(
            STORES_TEXT.encode("utf-16-le"),
            "line 1: not UTF-8: the file holds NUL bytes (00) between its characters, as "
            f"UTF-16 (little endian) text without a byte-order mark does; {UTF8}",
            id="UTF-16 LE without byte-order mark",
        ),
        pytest.param(
            STORES_TEXT.encode("utf-16-be"),
            "line 1: not UTF-8: the file holds NUL bytes (00) between its characters, as "
            f"UTF-16 (big endian) text without a byte-order mark does; {UTF8}",
            id="UTF-16 BE without byte-order mark",
        ),
        pytest.param(
            b"\xff\xfe" + STORES_TEXT.encode("utf-16-le"),
            "line 1: not UTF-8: the file starts with the byte-order mark of UTF-16 (little "
            f"endian), FF FE; {UTF8}",
            id="UTF-16 LE",
        ),
        pytest.param(
            b"\xfe\xff" + STORES_TEXT.encode("utf-16-be"),
            "line 1: not UTF-8: the file starts with the byte-order mark of UTF-16 (big "
            f"endian), FE FF; {UTF8}",
            id="UTF-16 BE",
        ),
        pytest.param(
            stores(*(r.encode() for r in STORE_ROWS[:1]), b"2,Bald\x00win,NULL,NULL,X,Y,NY,1"),
            f"line 3: a NUL byte (00) at byte {len(STORE_HEADER) + len(STORE_ROWS[0]) + 11} of "
            f"the file; expected UTF-8 text, which has none ({UTF8})",
            id="a NUL byte",
        ),
        pytest.param(
            BOM + stores(*(r.encode() for r in STORE_ROWS[:1]))
            + BOM + STORE_ROWS[1].encode() + b"\r\n",
            f"line 3: a second byte-order mark (EF BB BF) at byte "
            f"{3 + len(STORE_HEADER) + len(STORE_ROWS[0]) + 5}, as when two exports are "
            "joined into one file; expected one at most, at the start of the file",
            id="a second byte-order mark",
        ),
        pytest.param(
            BOM + BOM + stores(*(r.encode() for r in STORE_ROWS)),
            "line 1: a second byte-order mark (EF BB BF) at byte 4, as when two exports are "
            "joined into one file; expected one at most, at the start of the file",
            id="two byte-order marks",
        ),
    ],
)  # fmt: skip
def test_other_encodings_and_nul_bytes_are_refused_naming_line_and_cause(
    conn: duckdb.DuckDBPyConnection, tmp_path: Path, content: bytes, message: str
) -> None:
    folder = write(tmp_path, "stores.csv", content)
    assert refusal(conn, folder, STORES) == f"{folder}/stores.csv {message}"


def test_a_control_character_in_a_value_is_quoted_escaped(
    conn: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    folder = write(tmp_path, "customers.csv", [customer("1"), customer("2\x07")])
    assert refusal(conn, folder, CUSTOMERS) == (
        f"{folder}/customers.csv line 3 (customer_id=2\\x07), column customer_id: value "
        f"'2\\x07'; expected {WHOLE}"
    )


def test_a_line_longer_than_the_readers_limit_is_named_too_long(
    conn: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    long_name = "x" * (export.MAX_LINE_BYTES + 10)
    folder = write(tmp_path, "stores.csv", [STORE_ROWS[0], f"2,{long_name},,,,,,1"])
    assert refusal(conn, folder, STORES) == (
        f"{folder}/stores.csv line 3: the line is too long (2,000,019 bytes; the reader's limit "
        "is 2,000,000 bytes); expected shorter lines (is a quoted value missing its closing "
        "quote?)"
    )


# --- Money ------------------------------------------------------------------------------------


def test_a_line_whose_net_price_does_not_fit_is_refused(
    conn: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    # 9999999.99 x 2000000000 x (1 - 0.07) = 18599999981400000.00 > 9999999999999999.99
    folder = write(tmp_path, "order_items.csv", [item(), "1,2,8,2000000000,9999999.99,0.07"])
    assert refusal(conn, folder, ORDER_ITEMS) == (
        f"{folder}/order_items.csv line 3 (order_id=1, item_id=2), columns quantity and "
        "list_price: the line's net price list_price x quantity x (1 - discount) = 9999999.99 "
        "x 2000000000 x (1 - 0.07) = 18599999981400000.00 does not fit DECIMAL(18,2); expected "
        "at most 9999999999999999.99 in absolute value"
    )


def test_a_line_whose_net_price_fits_is_read_though_its_amount_before_discount_does_not(
    conn: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    # 99999999.99 x 2000000000 = 199999999980000000.00 does not fit DECIMAL(18,2), but the
    # net price 199999999980000000.00 x (1 - 0.999999) = 199999999980.00 does (the contract
    # bounds the net price); the rule line_net_price computes it in DECIMAL(38).
    folder = write(tmp_path, "order_items.csv", ["1,1,8,2000000000,99999999.99,0.999999"])
    assert export.read(conn, folder, ORDER_ITEMS) == 1
    net = expand("cents_half_up(line_net_price('list_price', 'quantity', 'discount'))")
    assert conn.execute(f"select {net} from {ORDER_ITEMS.table}").fetchone() == (
        Decimal("199999999980.00"),
    )


def test_a_negative_discount_that_breaks_the_bound_names_the_discount(
    conn: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    # 1000000.00 x 100000 x (1 - -99999) = 10000000000000000.00 (the amount 100000000000.00
    # fits)
    folder = write(tmp_path, "order_items.csv", ["1,1,8,100000,1000000.00,-99999"])
    assert refusal(conn, folder, ORDER_ITEMS) == (
        f"{folder}/order_items.csv line 2 (order_id=1, item_id=1), columns quantity, list_price "
        "and discount: the line's net price list_price x quantity x (1 - discount) = "
        "1000000.00 x 100000 x (1 - -99999) = 10000000000000000.00 does not fit DECIMAL(18,2); "
        "expected at most 9999999999999999.99 in absolute value"
    )


def test_an_order_whose_total_does_not_fit_is_refused(
    conn: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    # Each line fits: 5000000000000000.00 x 1; together 10000000000000000.00 does not. The
    # return (quantity -1), the line at discount 2 (quarantined) and line 3 repeated
    # identically (kept once) do not count.
    lines = [
        "1,1,8,1,5000000000000000.00,0",
        "1,2,8,1,5000000000000000.00,0",
        "1,2,8,1,5000000000000000.00,0",
        "1,3,8,-1,5000000000000000.00,0",
        "1,4,8,1,5000000000000000.00,2",
        "2,1,8,1,9999999999999999.99,0",  # fits, alone in its order
    ]
    folder = write(tmp_path, "order_items.csv", lines)
    assert refusal(conn, folder, ORDER_ITEMS) == (
        f"{folder}/order_items.csv lines 2, 3 (order_id=1), columns quantity and list_price: "
        "the order's total net price, the sum of its lines' list_price x quantity x (1 - "
        "discount), is 10000000000000000.00 and does not fit DECIMAL(18,2); expected at most "
        "9999999999999999.99"
    )


def test_amounts_that_fit_are_read(conn: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    lines = [
        "1,1,8,1,4999999999999999.99,0",
        "1,2,8,1,5000000000000000.00,0",  # the order: 9999999999999999.99
        "2,1,8,2,4999999999999999.99,0",  # 9999999999999999.98
        "3,1,8,1000000000,99999999.99,0.9",  # net 9999999999000000.00 fits, its amount not
    ]
    folder = write(tmp_path, "order_items.csv", lines)
    assert export.read(conn, folder, ORDER_ITEMS) == 4


# --- Errors of the warehouse are not the export's --------------------------------------------


class FullDisk:
    """A connection whose writes of working tables fail as on a full disk."""

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self.conn = conn

    def execute(self, sql: str, *args: Any) -> duckdb.DuckDBPyConnection:
        if "create or replace table work." in sql:
            raise duckdb.IOException(
                'IO Error: Could not write file "/data/warehouse.duckdb.candidate": No space '
                "left on device"
            )
        return self.conn.execute(sql, *args)


def test_a_full_disk_is_a_warehouse_error(conn: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    folder = write(tmp_path, "stores.csv", STORE_ROWS)
    with pytest.raises(WarehouseError) as raised:
        export.read(FullDisk(conn), folder, STORES)  # type: ignore[arg-type]
    assert raised.value.description == (
        f"The warehouse failed while reading {folder}/stores.csv: IO Error: "
        'Could not write file "/data/warehouse.duckdb.candidate": No space left on device. The '
        "warehouse is BIKE_DUCKDB_PATH (here an in-memory database); the export is not at "
        "fault. Free disk space, check that the warehouse's folder is writable, or raise "
        "BIKE_DUCKDB_MEMORY_LIMIT, then run again."
    )


def test_running_out_of_memory_is_a_warehouse_error_naming_bike_duckdb_path(
    tmp_path: Path,
) -> None:
    # A warehouse file with a tiny memory limit and no room to spill: DuckDB's own error.
    warehouse = tmp_path / "warehouse.duckdb.candidate"
    conn = duckdb.connect(str(warehouse), config={"memory_limit": "2MB", "threads": "1",
                                                  "max_temp_directory_size": "0KB"})  # fmt: skip
    conn.execute("create schema work")
    folder = tmp_path / "raw"
    rows = [customer(str(n)).replace("Ann", f"Ann{n:06}") for n in range(1, 200_001)]
    write(folder, "customers.csv", rows)
    with pytest.raises(WarehouseError) as raised:
        export.read(conn, folder, CUSTOMERS)
    message = raised.value.description
    assert message.startswith(f"The warehouse failed while reading {folder}/customers.csv: ")
    assert "Out of Memory Error" in message
    assert (
        f"The warehouse is BIKE_DUCKDB_PATH={tmp_path}/warehouse.duckdb (this run's new version "
        f"is written to {warehouse}); the export is not at fault." in message
    )
    conn.close()


# --- Faulty values are named by their lines in a file read in parallel -----------------------


def test_a_faulty_value_is_named_by_its_line_in_a_big_file(
    conn: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    # (Ported.) 100k customers: orders.csv (0.3M lines) is big enough for DuckDB to read it in
    # parallel and store its rows in no particular order.
    raw_dir = tmp_path / "raw"
    generate_export(raw_dir, 100_000, seed=3)
    lines = (raw_dir / "orders.csv").read_bytes().split(b"\r\n")
    fields = lines[4].split(b",")  # line 5
    fields[2] = b"7"
    lines[4] = b",".join(fields)
    lines[200_000] = lines[200_000].replace(b",", b",+", 1)  # valid: +<customer_id>
    (raw_dir / "orders.csv").write_bytes(b"\r\n".join(lines))
    assert refusal(conn, raw_dir, ORDERS) == (
        f"{raw_dir}/orders.csv line 5 (order_id={int(fields[0])}), column order_status: value "
        "'7'; expected 1 (Pending), 2 (Processing), 3 (Rejected) or 4 (Completed)"
    )
