"""The BikeStores export: each file's contract, read typed into the run's working tables
(`work.<file>`) or refused with a clear error (docs/tables.md, "Raw input")."""

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb

from bike_assets.lib.sql import source

MAX_EXAMPLES = 5  # faulty lines quoted in one error message
_GUARD = "bike_assets: a value does not fit its column type"  # raised in SQL, caught here


@dataclass(frozen=True)
class Kind:
    """How the reader parses a column of a contract type, and which parsed values it refuses.

    DuckDB's CSV casts round (12.5 as a whole number is 13, 100.005 as cents is 100.01), so a
    number is parsed wider (`read_as`) and cast to its type only if no guard refuses it.
    """

    read_as: str
    written: str  # how to write a value, for one that does not parse at all
    guards: tuple[tuple[str, str], ...] = ()  # (SQL over {c} true when refused, expected)

    def typed(self, column: str, kind: str) -> str:
        """SQL: the parsed column cast to its type, or an error when a guard refuses a value."""
        if not self.guards and self.read_as == kind:
            return column
        refused = " ".join(
            f"when {bad.format(c=column)} then error('{_GUARD}')" for bad, _ in self.guards
        )
        return f"case {refused} else cast({column} as {kind}) end as {column}"


def _whole(limit: str) -> Kind:
    return Kind(
        "DOUBLE",
        "a whole number",
        (
            ("{c} <> trunc({c})", "a whole number"),
            (f"abs({{c}}) >= {limit}", f"a whole number below {limit} in absolute value"),
        ),
    )


def _decimal(scale: int) -> Kind:
    return Kind(
        "DECIMAL(18,8)",
        "a decimal number such as 12.99",
        ((f"{{c}} <> round({{c}}, {scale})", f"a number with at most {scale} decimals"),),
    )


KINDS = {
    "BIGINT": _whole("2^53"),  # a DOUBLE holds every whole number below 2^53 exactly
    "INTEGER": _whole("2^31"),
    "DATE": Kind("DATE", "a date written YYYY-MM-DD"),
    "DECIMAL(18,2)": _decimal(2),
    "DECIMAL(18,6)": _decimal(6),
    "VARCHAR": Kind("VARCHAR", "text"),
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
        """The working table the typed rows are read into: work.customers for customers.csv."""
        return source(Path(self.name).stem)

    @property
    def guards(self) -> tuple[ValueRule, ...]:
        """The rules that refuse a parsed value its column's type (12.5 as a whole number)."""
        return tuple(
            ValueRule(column, bad.format(c=column), expected)
            for column, kind in self.columns.items()
            for bad, expected in KINDS[kind].guards
        )


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
        "list_price": "DECIMAL(18,2)",
        "discount": "DECIMAL(18,6)",
    },
    not_null=("order_id", "item_id", "quantity", "list_price", "discount"),
)
EXPORT = (CUSTOMERS, STORES, ORDERS, ORDER_ITEMS)


def read(conn: duckdb.DuckDBPyConnection, raw_dir: Path, spec: RawFile) -> int:
    """Read one file, typed, into the scratch table spec.table; return its row count.

    The rows are read in parallel and in no particular order; only the slow paths that name a
    faulty row by its line read the file again in order (read_in_file_order). Raises
    RawExportError for any structural fault, naming the file, the line, the column and what
    was expected.
    """
    path = raw_dir / spec.name
    header = _header(path, spec)
    create = f"create or replace table {spec.table} as"
    try:
        _read_csv(conn, path, header, spec, create, _typed(spec))
    except duckdb.InvalidInputException as error:
        if _GUARD not in str(error):
            raise
        # A guard refused a value: read the file again, unguarded, to name the values.
        unguarded = read_in_file_order(conn, raw_dir, spec, "unguarded", guarded=False)
        _fail_on_rejects(conn, path, header, spec)
        _fail_on_rule(conn, path, spec, unguarded, _first_broken(conn, unguarded, spec.guards))
        raise AssertionError(f"{path}: a guard refused a value that no guard rule finds") from error
    _fail_on_rejects(conn, path, header, spec)
    (rows,) = conn.execute(f"select count(*) from {spec.table}").fetchone()
    if rows == 0:
        raise RawExportError(f"{path}: file has a header but no rows; expected at least one row")
    not_null = tuple(ValueRule(column, f"{column} is null", "a value") for column in spec.not_null)
    broken = _first_broken(conn, spec.table, not_null + spec.rules)
    if broken is not None:
        ordered = read_in_file_order(conn, raw_dir, spec, "in_file_order", guarded=False)
        _fail_on_rule(conn, path, spec, ordered, broken)
    return rows


def read_in_file_order(
    conn: duckdb.DuckDBPyConnection, raw_dir: Path, spec: RawFile, table: str, guarded: bool
) -> str:
    """Read the file again into the temp `table`, in the file's order: record n is rowid n - 1
    (slower: for naming faulty rows by their line). Guarded, its rows are typed as in the
    scratch table; unguarded, as the reader parses them (KINDS read_as). Returns `table`."""
    path = raw_dir / spec.name
    header = _header(path, spec)
    select = _typed(spec) if guarded else "*"
    _read_csv(conn, path, header, spec, f"create or replace temp table {table} as", select, True)
    return table


def _typed(spec: RawFile) -> str:
    """SQL select list: each contract column cast to its type, under its kind's guards."""
    return ", ".join(KINDS[kind].typed(name, kind) for name, kind in spec.columns.items())


def _read_csv(
    conn: duckdb.DuckDBPyConnection,
    path: Path,
    header: list[str],
    spec: RawFile,
    create: str,
    select: str,
    in_file_order: bool = False,
) -> None:
    """`create` as `select` over the file's records, each contract column parsed as its kind
    reads it. Fails on a record DuckDB cannot split into fields or decode (its bad values are
    stored in raw_rejects, for _fail_on_rejects).

    In file order, record n has rowid n - 1 (preserve_insertion_order); numbering records in
    the query instead (row_number) would read on one thread. In no order, DuckDB writes the
    rows faster and has nothing to rewrite when it checkpoints them.
    """
    conn.execute("drop table if exists raw_rejects; drop table if exists raw_reject_scans")
    (in_order,) = conn.execute("select current_setting('preserve_insertion_order')").fetchone()
    conn.execute(f"set preserve_insertion_order = {in_file_order}")
    read_as = {
        name: KINDS[spec.columns[name]].read_as if name in spec.columns else "VARCHAR"
        for name in _read_names(header, spec)
    }
    try:
        conn.execute(
            f"""
            {create} select {select}
            from read_csv(?, header = true, auto_detect = false, delim = ',', quote = '"',
                          escape = '"', columns = ?, nullstr = ['NULL', ''], encoding = 'utf-8',
                          date_format = '%Y-%m-%d', store_rejects = true,
                          rejects_table = 'raw_rejects', rejects_scan = 'raw_reject_scans')
            """,
            [str(path), read_as],
        )
    except (duckdb.InvalidInputException, duckdb.IOException) as error:
        if _GUARD in str(error):
            raise
        first = str(error).splitlines()[0]
        raise RawExportError(f"{path}: not readable as a CSV export ({first})") from error
    finally:
        conn.execute(f"set preserve_insertion_order = {in_order}")


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
    """Fail on the records DuckDB could not split into the header's fields, decode, or parse.

    A record with several faults is named by its first: a wrong number of fields, else the
    first column's.
    """
    rejects = conn.execute(
        """
        select min(byte_position), arg_min(column_name, rank), arg_min(error_type, rank),
               arg_min(error_message, rank), count(*) over ()
        from (
            select *, if(error_type::varchar = 'CAST', column_idx, -1) as rank from raw_rejects
        )
        group by line order by 1 limit ?
        """,
        [MAX_EXAMPLES],
    ).fetchall()
    if not rejects:
        return
    lines = _lines_at(path, [position for position, *_ in rejects])
    as_in_header = dict(zip(_read_names(header, spec), header, strict=True))
    messages = [
        f"{path} line {line}"
        + _describe_reject(header, as_in_header.get(column), spec.columns.get(column), kind, text)
        for line, (_, column, kind, text, _) in zip(lines, rejects, strict=True)
    ]
    raise RawExportError(_and_more(messages, rejects[0][4]))


def _describe_reject(
    header: list[str], column: str | None, kind: str | None, error_type: str, message: str
) -> str:
    if error_type == "CAST" and kind is not None:
        value = re.search(r'Could not convert string "(.*)" to ', message, re.DOTALL)
        shown = repr(value[1]) if value else "(unreadable)"
        return f", column {column}: value {shown}; expected {KINDS[kind].written}"
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


def record_lines(conn: duckdb.DuckDBPyConnection, path: Path, rows: int) -> str:
    """SQL relation (record, line): the physical line each of the file's `rows` records starts
    on, the header being line 1. Scans the file: for naming faulty rows, not for every run."""
    starts = _record_lines(path, rows)
    if starts is None:
        return f"(select range as record, range + 1 as line from range(1, {rows + 1}))"
    if len(starts) != rows:
        raise RawExportError(
            f"{path}: {rows} rows read but {len(starts)} records found line by line; "
            "expected a CSV export with quotes written as in RFC 4180"
        )
    table = f"lines_of_{path.stem}"
    conn.execute(
        f"create or replace temp table {table} as "
        "select unnest(range(1, ? + 1)) as record, unnest(?::bigint[]) as line",
        [rows, starts],
    )
    return table


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


def _first_broken(
    conn: duckdb.DuckDBPyConnection, relation: str, rules: Sequence[ValueRule]
) -> tuple[ValueRule, int] | None:
    """The first of `rules` that a row of `relation` breaks, and how many rows do; one scan."""
    if not rules:
        return None
    counts = conn.execute(
        "select "
        + ", ".join(f"count(*) filter ({rule.bad_when})" for rule in rules)
        + f" from {relation}"
    ).fetchone()
    return next(((rule, n) for rule, n in zip(rules, counts, strict=True) if n), None)


def _fail_on_rule(
    conn: duckdb.DuckDBPyConnection,
    path: Path,
    spec: RawFile,
    ordered: str,
    broken: tuple[ValueRule, int] | None,
) -> None:
    """Fail naming the lines, keys and values of the rows of `ordered` (the file's rows read
    in file order, unguarded) that break the rule; nothing when none is broken."""
    if broken is None:
        return
    rule, total = broken

    def text(column: str) -> str:
        return value_text(column, KINDS[spec.columns[column]].read_as)

    key = " || ', ' || ".join(
        f"'{column}=' || coalesce({text(column)}, 'NULL')" for column in spec.key
    )
    value = text(rule.column)
    bad = conn.execute(
        f"select rowid + 1, {key}, {value} from {ordered} where {rule.bad_when} "
        f"order by rowid limit {MAX_EXAMPLES}"
    ).fetchall()
    (rows,) = conn.execute(f"select count(*) from {ordered}").fetchone()
    lines = dict(
        conn.execute(
            f"select record, line from {record_lines(conn, path, rows)} "
            f"where record in ({', '.join(str(record) for record, *_ in bad)})"
        ).fetchall()
    )
    messages = [
        f"{path} line {lines[record]} ({where}), column {rule.column}: "
        f"value {value if value is not None else 'NULL'}; expected {rule.expected}"
        for record, where, value in bad
    ]
    raise RawExportError(_and_more(messages, total))


def value_text(column: str, kind: str) -> str:
    """SQL: a typed value as text as a person writes it (a decimal without trailing zeros)."""
    if kind.startswith("DECIMAL"):
        return f"rtrim(rtrim({column}::varchar, '0'), '.')"
    if kind == "DOUBLE":  # a whole number parsed as DOUBLE: 12, not 12.0
        whole = f"{column} = trunc({column}) and abs({column}) < 2^53"
        return f"if({whole}, {column}::bigint::varchar, {column}::varchar)"
    return f"{column}::varchar"


def _and_more(messages: list[str], total: int) -> str:
    more = total - len(messages)
    return "\n".join(messages + ([f"... and {more} more faulty line(s)"] if more else []))
