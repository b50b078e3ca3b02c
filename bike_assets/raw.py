"""The raw BikeStores export: each file's contract, read typed or refused with a clear error."""

import csv
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb

# What a value of each DuckDB type must look like, said to the person who fixes the file.
_EXPECTED = {
    "BIGINT": "a whole number",
    "INTEGER": "a whole number",
    "DATE": "a date written YYYY-MM-DD",
    "DECIMAL(18,6)": "a decimal number such as 12.99",
    "VARCHAR": "text",
}


class RawExportError(dg.Failure):
    """The export breaks its contract: a file, a line or key, a column, and what was expected."""

    def __init__(self, description: str) -> None:
        super().__init__(description=description, allow_retries=False)


@dataclass(frozen=True)
class ValueRule:
    """A value that parses but cannot be right: the run fails (it is not a row to quarantine)."""

    column: str
    bad_when: str  # SQL condition over the file's typed columns
    expected: str


@dataclass(frozen=True)
class RawFile:
    """The contract of one file of the export."""

    name: str
    key: tuple[str, ...]
    columns: dict[str, str]  # required column -> DuckDB type; other columns are ignored
    not_null: tuple[str, ...]
    rules: tuple[ValueRule, ...] = field(default=())

    @property
    def table(self) -> str:
        """The temporary table the typed rows are read into."""
        return f"raw_{Path(self.name).stem}"


_ADDRESS = dict.fromkeys(("phone", "email", "street", "city", "state", "zip_code"), "VARCHAR")

CUSTOMERS = RawFile(
    name="customers.csv",
    key=("customer_id",),
    columns={"customer_id": "BIGINT", "first_name": "VARCHAR", "last_name": "VARCHAR", **_ADDRESS},
    not_null=("customer_id",),
)
STORES = RawFile(
    name="stores.csv",
    key=("store_id",),
    columns={"store_id": "BIGINT", "store_name": "VARCHAR", **_ADDRESS},
    not_null=("store_id", "store_name"),
)
ORDERS = RawFile(
    name="orders.csv",
    key=("order_id",),
    columns={
        "order_id": "BIGINT",
        "customer_id": "BIGINT",
        "order_status": "INTEGER",
        "order_date": "DATE",
        "required_date": "DATE",
        "shipped_date": "DATE",
        "store_id": "BIGINT",
        "staff_id": "BIGINT",
    },
    not_null=("order_id", "customer_id", "order_status", "order_date", "store_id"),
    rules=(
        ValueRule(
            "order_status",
            "order_status not between 1 and 4",
            "1 (Pending), 2 (Processing), 3 (Rejected) or 4 (Completed)",
        ),
    ),
)
ORDER_ITEMS = RawFile(
    name="order_items.csv",
    key=("order_id", "item_id"),
    columns={
        "order_id": "BIGINT",
        "item_id": "BIGINT",
        "product_id": "BIGINT",
        "quantity": "INTEGER",
        "list_price": "DECIMAL(18,6)",
        "discount": "DECIMAL(18,6)",
    },
    not_null=("order_id", "item_id", "quantity", "list_price", "discount"),
    rules=(
        ValueRule("list_price", "list_price <> round(list_price, 2)", "a price with two decimals"),
    ),
)
EXPORT = (CUSTOMERS, STORES, ORDERS, ORDER_ITEMS)


def _header(path: Path, spec: RawFile) -> list[str]:
    """The file's column names, normalized; fails on a missing, empty or non-UTF-8 file."""
    if not path.is_file():
        raise RawExportError(
            f"{path}: file is missing; expected the export's {spec.name} "
            f"with columns {', '.join(spec.columns)}"
        )
    with path.open("rb") as handle:
        first = handle.readline()
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise RawExportError(
            f"{path} line 1: not UTF-8 (byte {error.start}); expected a UTF-8 CSV export"
        ) from error
    if not text.strip():
        raise RawExportError(
            f"{path}: file is empty; expected a header row with {', '.join(spec.columns)}"
        )
    names = [name.strip().lower() for name in next(csv.reader([text]))]
    missing = [column for column in spec.columns if column not in names]
    if missing:
        raise RawExportError(
            f"{path} line 1: column {', '.join(missing)} is missing from the header "
            f"({', '.join(names)}); expected columns {', '.join(spec.columns)}"
        )
    return names


def _describe_reject(path: Path, reject: tuple, spec: RawFile, header: list[str]) -> str:
    line, column, error_type, message = reject
    if error_type in ("MISSING COLUMNS", "TOO MANY COLUMNS"):
        return (
            f"{path} line {line}: wrong number of fields ({message}); columns: {', '.join(header)}"
        )
    if error_type == "INVALID ENCODING":
        return f"{path} line {line}, column {column}: not valid UTF-8; expected UTF-8 text"
    if error_type == "CAST":
        expected = _EXPECTED[spec.columns.get(column, "VARCHAR")]
        return f"{path} line {line}, column {column}: {message}; expected {expected}"
    return f"{path} line {line}, column {column}: {message}"


def read(conn: duckdb.DuckDBPyConnection, raw_dir: Path, spec: RawFile) -> int:
    """Read one file into the temp table spec.table with a `line` column; return its row count.

    Raises RawExportError for any structural fault: the file, line, column and expectation.
    """
    path = raw_dir / spec.name
    header = _header(path, spec)
    types = {name: spec.columns.get(name, "VARCHAR") for name in header}
    selected = ", ".join(["line", *spec.columns])
    conn.execute("drop table if exists raw_rejects; drop table if exists raw_reject_scans")
    conn.execute(
        f"""
        create or replace temp table {spec.table} as
        select {selected} from (
            select row_number() over () + 1 as line, *
            from read_csv(?, header = true, delim = ',', quote = '"', escape = '"',
                          columns = ?, nullstr = ['NULL', ''], encoding = 'utf-8',
                          store_rejects = true, rejects_table = 'raw_rejects',
                          rejects_scan = 'raw_reject_scans')
        )
        """,
        [str(path), types],
    )
    rejects = conn.execute(
        "select line, column_name, error_type::varchar, error_message from raw_rejects "
        "order by line limit 5"
    ).fetchall()
    if rejects:
        raise RawExportError(
            "\n".join(_describe_reject(path, reject, spec, header) for reject in rejects)
        )
    (rows,) = conn.execute(f"select count(*) from {spec.table}").fetchone()
    if rows == 0:
        raise RawExportError(f"{path}: file has a header but no rows; expected at least one row")
    _check_values(conn, path, spec)
    return rows


def _check_values(conn: duckdb.DuckDBPyConnection, path: Path, spec: RawFile) -> None:
    """Fail on a missing required value or a value that breaks one of the file's rules."""
    rules = [ValueRule(column, f"{column} is null", "a value") for column in spec.not_null]
    rules += spec.rules
    key = " || ', ' || ".join(
        f"'{column}=' || coalesce({column}::varchar, 'NULL')" for column in spec.key
    )
    for rule in rules:
        bad = conn.execute(
            f"select line, {key}, {rule.column}::varchar from {spec.table} "
            f"where {rule.bad_when} order by line limit 5"
        ).fetchall()
        if bad:
            raise RawExportError(
                "\n".join(
                    f"{path} line {line} ({where}), column {rule.column}: "
                    f"value {value if value is not None else 'NULL'}; expected {rule.expected}"
                    for line, where, value in bad
                )
            )
