"""The raw BikeStores export: each file's contract, read typed or refused with a clear error."""

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb

MAX_EXAMPLES = 5  # faulty lines quoted in one error message


@dataclass(frozen=True)
class Format:
    """How a value of a typed column must be written, said to the person who fixes the file.

    DuckDB's own casts are lenient (12.5 -> 13, 1e3, 0x10, 2024/1/1, 2024-01-01x), so the text
    must match `pattern` (spaces around it allowed) and, if `may_not_cast`, also cast.
    """

    pattern: str
    expected: str
    may_not_cast: bool  # the pattern admits values the type refuses (2018-02-30, 10**20)


_WHOLE = Format(r" *[+-]?[0-9]+ *", "a whole number", may_not_cast=True)
_FORMATS = {
    "BIGINT": _WHOLE,
    "INTEGER": _WHOLE,
    "DATE": Format(r" *[0-9]{4}-[0-9]{2}-[0-9]{2} *", "a date written YYYY-MM-DD", True),
    "DECIMAL(18,6)": Format(
        r" *[+-]?[0-9]{1,12}(\.[0-9]{1,6})? *", "a decimal number such as 12.99", False
    ),
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


def read(conn: duckdb.DuckDBPyConnection, raw_dir: Path, spec: RawFile) -> int:
    """Read one file into the temp table spec.table with a `line` column; return its row count.

    `line` is the physical line a row starts on, the header being line 1. Raises RawExportError
    for any structural fault, naming the file, the line, the column and what was expected.
    """
    path = raw_dir / spec.name
    header = _header(path, spec)
    typed = ", ".join(
        name if kind == "VARCHAR" else f"try_cast({name} as {kind}) as {name}"
        for name, kind in spec.columns.items()
    )
    records = f"{spec.table}_records"
    _read_text(
        conn, path, header, spec, records, f"{typed}, {_misformatted(spec)} as __misformatted"
    )
    (rows,) = conn.execute(f"select count(*) from {records}").fetchone()
    if rows == 0:
        raise RawExportError(f"{path}: file has a header but no rows; expected at least one row")
    numbered = _numbered(conn, path, records, rows)
    conn.execute(
        f"create or replace temp view {spec.table} as "
        f"select line, * exclude (line, __record, __misformatted) from {numbered}"
    )
    (misformatted,) = conn.execute(f"select bool_or(__misformatted) from {records}").fetchone()
    if misformatted:
        _read_text(conn, path, header, spec, "raw_text", "*")
        _fail_on_formats(
            conn,
            path,
            spec,
            "(select rowid + 1 as __record, * from raw_text) raw_text "
            f"join (select __record, line from {numbered}) using (__record)",
        )
    _check_values(conn, path, spec)
    return rows


def _read_text(
    conn: duckdb.DuckDBPyConnection,
    path: Path,
    header: list[str],
    spec: RawFile,
    table: str,
    select: str,
) -> None:
    """Create the temp table as `select` over the file's records, every column read as text;
    fail on a record DuckDB cannot split into fields or decode.

    The table keeps the file's order (DuckDB preserves insertion order): record n has rowid
    n - 1. Numbering records in the query instead (row_number) would read on one thread.
    """
    conn.execute("drop table if exists raw_rejects; drop table if exists raw_reject_scans")
    try:
        conn.execute(
            f"""
            create or replace temp table {table} as select {select}
            from read_csv(?, header = true, auto_detect = false, delim = ',', quote = '"',
                          escape = '"', columns = ?, nullstr = ['NULL', ''], encoding = 'utf-8',
                          store_rejects = true, rejects_table = 'raw_rejects',
                          rejects_scan = 'raw_reject_scans')
            """,
            [str(path), dict.fromkeys(_read_names(header, spec), "VARCHAR")],
        )
    except (duckdb.InvalidInputException, duckdb.IOException) as error:
        first = str(error).splitlines()[0]
        raise RawExportError(f"{path}: not readable as a CSV export ({first})") from error
    _fail_on_rejects(conn, path, header, spec)


def _header(path: Path, spec: RawFile) -> list[str]:
    """The file's column names, normalized; fails on a missing, empty or non-UTF-8 header."""
    expected = ", ".join(spec.columns)
    try:
        with path.open("rb") as handle:
            first = handle.readline()
            rest = handle.read(1)
    except FileNotFoundError:
        raise RawExportError(
            f"{path}: file is missing; expected the export's {spec.name} with columns {expected}"
        ) from None
    except OSError as error:
        raise RawExportError(
            f"{path}: cannot be read ({error.strerror}); expected the export's {spec.name}"
        ) from error
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise RawExportError(
            f"{path} line 1: not UTF-8 (byte {error.start + 1} of the header); "
            "expected a UTF-8 CSV export"
        ) from error
    if not text.strip():
        where = "line 1 is blank" if rest else "file is empty"
        raise RawExportError(f"{path}: {where}; expected a header row with {expected}")
    names = [name.strip().lower() for name in next(csv.reader([text]))]
    repeated = [column for column in spec.columns if names.count(column) > 1]
    if repeated:
        raise RawExportError(
            f"{path} line 1: column {', '.join(repeated)} appears more than once in the header; "
            "expected each column once"
        )
    missing = [column for column in spec.columns if column not in names]
    if missing:
        raise RawExportError(
            f"{path} line 1: column {', '.join(missing)} is missing from the header "
            f"({', '.join(names)}); expected columns {expected}"
        )
    return names


def _read_names(header: list[str], spec: RawFile) -> list[str]:
    """The names the columns are read under: the contract's, and __extra_<n> for the others.

    (The others are ignored, whatever they are called: `line`, twice, or nothing.)
    """
    return [name if name in spec.columns else f"__extra_{i}" for i, name in enumerate(header)]


def _fail_on_rejects(
    conn: duckdb.DuckDBPyConnection, path: Path, header: list[str], spec: RawFile
) -> None:
    """Fail on the records DuckDB could not split into the header's fields, or not decode."""
    rejects = conn.execute(
        """
        select min(byte_position), arg_min(column_name, column_idx), any_value(error_type)::varchar,
               any_value(error_message), count(*) over ()
        from raw_rejects group by line order by 1 limit ?
        """,
        [MAX_EXAMPLES],
    ).fetchall()
    if not rejects:
        return
    lines = _lines_at(path, [position for position, *_ in rejects])
    as_in_header = dict(zip(_read_names(header, spec), header, strict=True))
    messages = [
        f"{path} line {line}"
        + _describe_reject(header, as_in_header.get(column), error_type, message)
        for line, (_, column, error_type, message, _) in zip(lines, rejects, strict=True)
    ]
    raise RawExportError(_and_more(messages, rejects[0][4]))


def _describe_reject(header: list[str], column: str | None, error_type: str, message: str) -> str:
    found = re.search(r"Found: (\d+)", message)
    fields = f"{found[1] if found else 'a wrong number of'} fields"
    expected = f"expected {len(header)} fields ({', '.join(header)})"
    if error_type == "MISSING COLUMNS":
        return f", column {column}: missing, the row has {fields}; {expected}"
    if error_type == "TOO MANY COLUMNS":
        return f", after column {header[-1]}: the row has {fields}; {expected}"
    if error_type == "INVALID ENCODING":
        return f", column {column}: not valid UTF-8; expected a UTF-8 export (re-export as UTF-8)"
    if error_type == "UNQUOTED VALUE":
        return (
            f", column {column}: a quoted value is not closed, or text follows its closing "
            'quote; expected "..." with any quote inside written twice'
        )
    return f", column {column}: {message}"


def _lines_at(path: Path, positions: list[int]) -> list[int]:
    """The physical line of each byte position that DuckDB reports for a faulty record.

    DuckDB's byte_position points inside the record or just after its line break; its `line`
    does not count line breaks inside quoted values.
    """
    with path.open("rb") as handle:
        data = handle.read(max(positions))
    return [data.count(b"\n", 0, max(position - 1, 0)) + 1 for position in positions]


def _numbered(conn: duckdb.DuckDBPyConnection, path: Path, table: str, rows: int) -> str:
    """A FROM clause: the table's records with their number `__record` (from 1, in file order)
    and the physical `line` each starts on."""
    records = f"(select rowid + 1 as __record, * from {table})"
    starts = _record_lines(path, rows)
    if starts is None:
        return f"(select __record + 1 as line, * from {records})"
    if len(starts) != rows:
        raise RawExportError(
            f"{path}: {rows} rows read but {len(starts)} records found line by line; "
            "expected a CSV export with quotes written as in RFC 4180"
        )
    conn.execute(
        f"create or replace temp table {table}_lines as "
        "select unnest(range(1, ? + 1)) as __record, unnest(?::bigint[]) as line",
        [rows, starts],
    )
    return f"(select * from {records} join {table}_lines using (__record))"


def _record_lines(path: Path, rows: int) -> list[int] | None:
    """The line each record starts on; None when record n is simply on line n + 1.

    Blank lines (which DuckDB skips) and line breaks inside quoted values shift the lines.
    """
    if _lines_with_content(path) == rows + 1:
        return None
    starts = []
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        end = reader.line_num
        for record in reader:
            if record:
                starts.append(end + 1)
            end = reader.line_num
    return starts


def _lines_with_content(path: Path) -> int:
    """The number of lines up to the last one that is not blank."""
    newlines, tail = 0, b""
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 24), b""):
            newlines += chunk.count(b"\n")
            tail = chunk
    trailing = tail[len(tail.rstrip(b"\r\n")) :].count(b"\n")
    return newlines - trailing + 1


def _misformatted(spec: RawFile) -> str:
    """SQL: whether a record has a typed value that is not written as the contract says."""
    return " or ".join(
        _misformatted_value(name, kind) for name, kind in spec.columns.items() if kind in _FORMATS
    )


def _misformatted_value(name: str, kind: str) -> str:
    written = f"regexp_full_match({name}, '{_FORMATS[kind].pattern}')"
    if _FORMATS[kind].may_not_cast:
        written += f" and try_cast({name} as {kind}) is not null"
    return f"({name} is not null and not ({written}))"


def _fail_on_formats(
    conn: duckdb.DuckDBPyConnection, path: Path, spec: RawFile, records: str
) -> None:
    """Fail naming the typed values not written as the contract says, in `records` (the text
    columns with the typed table's `line`)."""
    bad = " union all ".join(
        f"select line, {position} as position, '{name}' as column_name, t.{name} as value "
        f"from (select line, raw_text.{name} from {records}) t "
        f"where {_misformatted_value(f't.{name}', kind)}"
        for position, (name, kind) in enumerate(spec.columns.items())
        if kind in _FORMATS
    )
    found = conn.execute(
        f"select line, column_name, value, count(*) over () from ({bad}) "
        f"order by line, position limit {MAX_EXAMPLES}"
    ).fetchall()
    messages = [
        f"{path} line {line}, column {column}: value {value!r}; "
        f"expected {_FORMATS[spec.columns[column]].expected}"
        for line, column, value, _ in found
    ]
    raise RawExportError(_and_more(messages, found[0][3]))


def _check_values(conn: duckdb.DuckDBPyConnection, path: Path, spec: RawFile) -> None:
    """Fail on a missing required value or a value that breaks one of the file's rules."""
    rules = [ValueRule(column, f"{column} is null", "a value") for column in spec.not_null]
    rules += spec.rules
    key = " || ', ' || ".join(
        f"'{column}=' || coalesce({column}::varchar, 'NULL')" for column in spec.key
    )
    for rule in rules:
        value = value_text(rule.column, spec.columns[rule.column])
        bad = conn.execute(
            f"select line, {key}, {value}, count(*) over () from {spec.table} "
            f"where {rule.bad_when} order by line limit {MAX_EXAMPLES}"
        ).fetchall()
        if bad:
            messages = [
                f"{path} line {line} ({where}), column {rule.column}: "
                f"value {value if value is not None else 'NULL'}; expected {rule.expected}"
                for line, where, value, _ in bad
            ]
            raise RawExportError(_and_more(messages, bad[0][3]))


def value_text(column: str, kind: str) -> str:
    """SQL: a typed value as text as a person writes it (a decimal without trailing zeros)."""
    if kind.startswith("DECIMAL"):
        return f"rtrim(rtrim({column}::varchar, '0'), '.')"
    return f"{column}::varchar"


def _and_more(messages: list[str], total: int) -> str:
    more = total - len(messages)
    return "\n".join(messages + ([f"... and {more} more faulty line(s)"] if more else []))
