"""The BikeStores export: each file's contract, read typed into the run's working tables
(`work.<file>`) or refused with a clear error (docs/tables.md, "Raw input").

A file is read in three steps, and refused at the first that fails, naming the file, the line,
the column, the value as written and what was expected:
1. The bytes (`scan`): UTF-8 without NUL bytes (UTF-16, with or without byte-order mark, is
   refused), one byte-order mark at most (at the start), line breaks CRLF or LF or a mix of the
   two; a carriage return (CR) alone is refused (old Mac line breaks, `\\r\\r\\n`, a CR inside
   an unquoted value), except inside a quoted value, where it is part of the value as written.
   Read in 16 MB chunks with numpy (about 0.1 s per 100 MB).
2. The header (`read_header`): every contract column once, in any order and case; others ignored.
3. The values: DuckDB reads every column as text (VARCHAR), exactly as written, and in the same
   pass judges each value by its column's `Kind` before casting it exactly (never through a
   DOUBLE): a whole number is digits with an optional sign and fits its type; a decimal has at
   most its scale's decimals and fits DECIMAL(18, scale); a date is YYYY-MM-DD, a real day of
   the years 1900 to 2199. Surrounding spaces are refused in numbers and dates (` 12` is not
   `12`); text is kept as written. The pass's checks are cheap and only ever accept values the
   contract accepts; when one refuses a value, the file is read again in file order
   (`read_in_file_order`) and judged by the contract's regular expressions (`Kind.rules`), to
   name the faulty values by their lines. Money must fit (order_items.csv): every line's
   amount list_price x quantity, its net price and every order's total fit DECIMAL(18,2).

Errors of the warehouse itself while reading (disk full, permission denied, out of memory) are
raised as WarehouseError naming BIKE_DUCKDB_PATH, never blamed on the export
(`warehouse_errors`).
"""

import csv
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path
from typing import Any, NoReturn

import dagster as dg
import duckdb
import numpy as np

from bike_assets.lib.sql import source
from bike_assets.lib.warehouse import WarehouseError, describe

MAX_EXAMPLES = 5  # faulty lines quoted in one error message
CHUNK_BYTES = 16 << 20  # the byte scan reads the file in chunks of this size
MAX_LINE_BYTES = 2_000_000  # the reader's limit on a line (DuckDB's max_line_size)
BOM = b"\xef\xbb\xbf"  # UTF-8 byte-order mark
# The bytes of a file of numbers and dates (after its header): digits, signs, points, commas,
# line breaks and NULL. Of strings made of these, DuckDB's casts accept exactly the contract's
# forms, but for a decimal point: a faster test suffices (Kind.plain). Space, tab, e, x, b, _
# (which casts accept: ' 12', '1e3', '0x10', '0b1', '1_000') and quotes are not among them.
PLAIN_BYTES = b"0123456789,.+-\r\nNUL"
MONEY_MAX = Decimal("9999999999999999.99")  # the largest amount of a DECIMAL(18,2)
_MONEY_SURELY_FITS = 1e15  # a DOUBLE estimate below this is far from MONEY_MAX
_GUARD = "bike_assets: a value is not written as the contract says"  # raised in SQL
_DOUBLED_CR = re.compile(rb"\r\r+\n")
_UTF8 = "expected a UTF-8 export (re-export as UTF-8)"


class RawExportError(dg.Failure):
    """The export breaks its contract: a file, a line or key, a column, and what was expected."""

    def __init__(self, description: str) -> None:
        super().__init__(description=_printable(description), allow_retries=False)


# --- The contract of a column's values ----------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One way a written value breaks its column's contract (docs/tables.md, "Raw input")."""

    bad: str  # SQL over {c}, the value as written (VARCHAR, not null): true when refused
    expected: str


@dataclass(frozen=True)
class Kind:
    """How the values of a contract type are written, and judged before they are cast.

    `rules` are the contract, in order (a value is named by the first it breaks); `fast` is
    a cheaper test over the text that accepts only values every rule accepts, the cast then
    refusing the few it lets through that are not (`--1`, `1.2.3`, a whole number too big,
    2018-02-30). The reader's pass runs `fast`; the regular expressions of `rules` run only
    on a file that has a faulty value, to name it. `plain` is cheaper still, and only used
    on a file whose rows hold nothing but PLAIN_BYTES (no space, letter, quote...: then the
    cast accepts nothing the contract refuses but a decimal point where it has no place).
    """

    sql_type: str
    rules: tuple[Rule, ...] = ()
    fast: str = "true"
    plain: str | None = None

    def guarded(self, column: str, required: bool, plain: bool = False) -> str:
        """SQL: the column cast to its type, or an error (_GUARD) for a value that the
        contract refuses, or that is missing when required. `plain`: the file's rows hold
        only PLAIN_BYTES."""
        missing = f"error('{_GUARD}')" if required else "null"
        if not self.rules:
            return f"case when {column} is null then {missing} else {column} end as {column}"
        test = self.plain if plain and self.plain is not None else self.fast
        return (
            f"case when {column} is null then {missing} "
            f"when {test.format(c=column)} then cast({column} as {self.sql_type}) "
            f"else error('{_GUARD}') end as {column}"
        )


def _whole(sql_type: str, low: int, high: int) -> Kind:
    return Kind(
        sql_type,
        (
            Rule(
                "not regexp_full_match({c}, '[+-]?[0-9]+')",
                "a whole number written as digits with an optional sign (no decimal point, "
                "exponent, spaces or other characters)",
            ),
            Rule(
                f"try_cast({{c}} as {sql_type}) is null",
                f"a whole number from {low} to {high} ({sql_type})",
            ),
        ),
        # Only signs and digits: DuckDB's cast accepts exactly [+-]?[0-9]+ of those.
        fast="not ({c} glob '*[!0-9+-]*')",
        plain="{c} not like '%.%'",
    )


def _decimal(scale: int) -> Kind:
    sql_type = f"DECIMAL(18,{scale})"
    # at most `scale` characters after a point (of which the cast accepts one at most)
    decimals = f"{{c}} not like '%.{'_' * (scale + 1)}%'"
    return Kind(
        sql_type,
        (
            Rule(
                r"not regexp_full_match({c}, '[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)')",
                "a decimal number written as digits with an optional sign and decimal point, "
                "such as 12.99 (no exponent, spaces or thousands separators)",
            ),
            Rule(
                f"length(regexp_extract({{c}}, '[.]([0-9]*)$', 1)) > {scale}",
                f"at most {scale} decimals (a value is never rounded)",
            ),
            Rule(
                f"try_cast({{c}} as {sql_type}) is null",
                f"at most {18 - scale} digits before the decimal point ({sql_type})",
            ),
        ),
        # Only signs, digits and points, at most `scale` after the point: DuckDB's cast
        # accepts exactly [+-]?([0-9]+([.][0-9]*)?|[.][0-9]+) of those.
        fast=f"not ({{c}} glob '*[!0-9.+-]*') and ({decimals})",
        plain=decimals,
    )


_DAY = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]"
_YEARS = "{c} between '1900-01-01' and '2199-12-31'"
KINDS = {
    "BIGINT": _whole("BIGINT", -(2**63), 2**63 - 1),
    "INTEGER": _whole("INTEGER", -(2**31), 2**31 - 1),
    "DECIMAL(18,2)": _decimal(2),
    "DECIMAL(18,6)": _decimal(6),
    "DATE": Kind(
        "DATE",
        (
            Rule(
                "not regexp_full_match({c}, '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}')",
                "a date written YYYY-MM-DD",
            ),
            Rule("try_cast({c} as DATE) is null", "a real calendar day written YYYY-MM-DD"),
            Rule(
                "{c} not between '1900-01-01' and '2199-12-31'",
                "a day of the years 1900 to 2199 written YYYY-MM-DD",
            ),
        ),
        fast=f"{{c}} glob '{_DAY}' and {_YEARS}",
        # Of strings of PLAIN_BYTES so laid out, DuckDB's cast accepts only YYYY-MM-DD.
        plain=f"{{c}} like '____-__-__' and {_YEARS}",
    ),
    "VARCHAR": Kind("VARCHAR"),
}


@dataclass(frozen=True)
class ValueRule:
    """A value that is well written but cannot be right: the run fails (it is not a row to
    quarantine). `bad_when` is SQL over {c}, the column's typed value."""

    column: str
    bad_when: str
    expected: str


# --- The files --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawFile:
    """The contract of one file of the export."""

    name: str
    key: tuple[str, ...]
    columns: dict[str, str]  # required column -> DuckDB type; other columns are ignored
    not_null: tuple[str, ...]
    rules: tuple[ValueRule, ...] = field(default=())
    money: bool = False  # list_price x quantity x (1 - discount) must fit DECIMAL(18,2)

    @property
    def table(self) -> str:
        """The working table the typed rows are read into: work.customers for customers.csv."""
        return source(Path(self.name).stem)


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
            "{c} not between 1 and 4",
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
    money=True,
)
EXPORT = (CUSTOMERS, STORES, ORDERS, ORDER_ITEMS)


# --- Reading ----------------------------------------------------------------------------------


def read(conn: duckdb.DuckDBPyConnection, raw_dir: Path, spec: RawFile) -> int:
    """Read one file of the export into its working table spec.table (typed as the contract
    says); return its row count.

    The rows are read in parallel and stored in no particular order. Raises RawExportError
    naming the file, the line, the column, the value as written and the expected form when
    the file breaks its contract (docs/tables.md, "Raw input"); WarehouseError (naming
    BIKE_DUCKDB_PATH) when the warehouse cannot be written meanwhile.
    """
    with _opened(conn, raw_dir, spec) as (path, csv_path, header, layout):
        try:
            _read_csv(
                conn,
                csv_path,
                header,
                spec,
                f"create or replace table {spec.table} as",
                _guarded(spec, layout.plain),
            )
        except (duckdb.InvalidInputException, duckdb.ConversionException) as error:
            if isinstance(error, duckdb.InvalidInputException) and _GUARD not in str(error):
                raise RawExportError(
                    f"{path}: not readable as a CSV export ({describe(error)}); expected a "
                    "CSV export with quotes written as in RFC 4180"
                ) from error
            conn.execute(f"drop table if exists {spec.table}")
            _fail_on_values(conn, path, csv_path, header, spec, error)
        _fail_on_rejects(conn, path, csv_path, header, spec)
        (rows,) = conn.execute(f"select count(*) from {spec.table}").fetchone()
        if rows == 0:
            raise RawExportError(
                f"{path}: file has a header but no rows; expected at least one row"
            )
        if _first_broken(conn, spec):
            _fail_on_values(conn, path, csv_path, header, spec, None)
        if spec.money:
            _check_money(conn, path, csv_path, header, spec, rows)
    return rows


def read_in_file_order(
    conn: duckdb.DuckDBPyConnection,
    raw_dir: Path,
    spec: RawFile,
    table: str,
    where: str = "true",
    records: int | None = None,
) -> str:
    """Read the file again into the temp `table` (line BIGINT, then each contract column as
    written, VARCHAR): the rows for which `where` (SQL over the contract columns as written,
    the row aliased r) holds, in file order. `line` is the line a row starts on, the header
    being line 1. `records`: the file's number of rows, when known (else it is counted). For
    naming rows by their lines: the file is streamed, only the selected rows are kept.
    Returns `table`.

    Raises RawExportError as `read` does for a file that cannot be split into rows.
    """
    with _opened(conn, raw_dir, spec) as (path, csv_path, header, _):
        _numbered(conn, path, csv_path, header, spec, table, where, records)
    return table


@contextmanager
def _opened(
    conn: duckdb.DuckDBPyConnection, raw_dir: Path, spec: RawFile
) -> Iterator[tuple[Path, Path, list[str], "Layout"]]:
    """One file of the export, ready for DuckDB to read: (its path, the path DuckDB reads,
    its header, its layout), once the byte scan and the header pass; DuckDB's errors of the
    warehouse met meanwhile are raised as WarehouseError (warehouse_errors)."""
    path = raw_dir / spec.name
    layout = scan(path, spec)
    header = read_header(path, spec)
    with (
        _csv_source(path, layout) as csv_path,
        warehouse_errors(conn, f"reading {path}", [(path, csv_path)]),
    ):
        yield path, csv_path, header, layout


def _guarded(spec: RawFile, plain: bool) -> str:
    """SQL select list: each contract column judged as written and cast to its type
    (`plain`: the file's rows hold only PLAIN_BYTES)."""
    return ", ".join(
        KINDS[kind].guarded(name, name in spec.not_null, plain)
        for name, kind in spec.columns.items()
    )


def _read_csv(
    conn: duckdb.DuckDBPyConnection,
    csv_path: Path,
    header: list[str],
    spec: RawFile,
    create: str,
    select: str,
    where: str | None = None,
) -> None:
    """`create` as `select` over the file's records, every column read as VARCHAR, exactly as
    written ('' and NULL are missing values). A record DuckDB cannot split into the header's
    fields or decode is left out and kept in raw_rejects (for _fail_on_rejects).

    Without `where`, the rows are read in parallel and stored in no particular order (DuckDB
    writes them faster). With `where` (SQL over the columns, the row aliased r), each record is
    numbered (`record`, from 1, in file order: a streaming row_number) and only those for
    which `where` holds are kept.
    """
    conn.execute("drop table if exists raw_rejects; drop table if exists raw_reject_scans")
    (in_order,) = conn.execute("select current_setting('preserve_insertion_order')").fetchone()
    conn.execute(f"set preserve_insertion_order = {where is not None}")
    records = f"""
        read_csv(?, header = true, auto_detect = false, delim = ',', quote = '"', escape = '"',
                 columns = ?, nullstr = ['NULL', ''], encoding = 'utf-8',
                 max_line_size = {MAX_LINE_BYTES}, store_rejects = true,
                 rejects_table = 'raw_rejects', rejects_scan = 'raw_reject_scans')
    """
    if where is not None:
        records = f"(select row_number() over () as record, * from {records}) r where {where}"
    try:
        conn.execute(
            f"{create} select {select} from {records}",
            [str(csv_path), dict.fromkeys(_read_names(header, spec), "VARCHAR")],
        )
    finally:
        conn.execute(f"set preserve_insertion_order = {in_order}")


def _read_names(header: list[str], spec: RawFile) -> list[str]:
    """The names the columns are read under: the contract's, and __extra_<n> for the others.

    (The others are ignored, whatever they are called: `line`, twice, or nothing.)
    """
    return [name if name in spec.columns else f"__extra_{i}" for i, name in enumerate(header)]


def _numbered(
    conn: duckdb.DuckDBPyConnection,
    path: Path,
    csv_path: Path,
    header: list[str],
    spec: RawFile,
    table: str,
    where: str,
    records: int | None,
) -> None:
    """The temp `table` (line, contract columns as written) of the rows for which `where`
    holds, in file order (see read_in_file_order); fails first on records that cannot be split
    into fields."""
    columns = ", ".join(spec.columns)
    selected = f"{table}__records"
    _read_csv(conn, csv_path, header, spec, f"create or replace temp table {selected} as",
              f"record, {columns}", where)  # fmt: skip
    _fail_on_rejects(conn, path, csv_path, header, spec)
    if records is None:
        (records,) = conn.execute(
            "select count(*) from read_csv(?, header = true, auto_detect = false, delim = ',', "
            "quote = '\"', escape = '\"', columns = ?, max_line_size = ?)",
            [str(csv_path), dict.fromkeys(_read_names(header, spec), "VARCHAR"), MAX_LINE_BYTES],
        ).fetchone()
    wanted = [record for (record,) in conn.execute(f"select record from {selected}").fetchall()]
    starts = record_lines(path, csv_path, records, set(wanted))
    if starts is None:  # record n is on line n + 1
        line = "record + 1"
    else:
        conn.execute(
            f"create or replace temp table {table}__lines as "
            "select unnest(?::bigint[]) as record, unnest(?::bigint[]) as line",
            [list(starts), list(starts.values())],
        )
        line = f"(select l.line from {table}__lines l where l.record = s.record)"
    try:
        conn.execute(
            f"create or replace temp table {table} as "
            f"select {line} as line, {columns} from {selected} s order by record"
        )
    finally:
        conn.execute(f"drop table if exists {selected}; drop table if exists {table}__lines")


def record_lines(
    path: Path, csv_path: Path, records: int, wanted: set[int]
) -> dict[int, int] | None:
    """The line each `wanted` record (numbered from 1) starts on; None when record n is simply
    on line n + 1 (the file has `records` records on as many lines after its header).

    Blank lines (which DuckDB skips) and line breaks inside quoted values shift the lines.
    The byte scan has refused a lone CR outside quotes, so Python's csv, given the file's
    lines split at LF, splits the records as DuckDB does.
    """
    if _lines_with_content(csv_path) == records + 1:
        return None
    starts, record = {}, 0
    csv.field_size_limit(max(csv.field_size_limit(), MAX_LINE_BYTES))  # values as DuckDB's
    with csv_path.open("rb") as handle:
        # Lines end with LF only (a CR alone inside quotes is part of a value).
        lines = (line.decode("utf-8", "replace") for line in handle)
        reader = csv.reader(
            line.removeprefix("\ufeff") if n == 0 else line for n, line in enumerate(lines)
        )
        next(reader)
        end = reader.line_num
        for fields in reader:
            if fields:
                record += 1
                if record in wanted:
                    starts[record] = end + 1
            end = reader.line_num
    if record != records:
        raise RawExportError(
            f"{path}: {records} rows read but {record} records found line by line; "
            "expected a CSV export with quotes written as in RFC 4180"
        )
    return starts


def _lines_with_content(path: Path) -> int:
    """The number of lines up to the last one that is not blank."""
    newlines, tail = 0, b""
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            newlines += chunk.count(b"\n")
            tail = chunk
    trailing = tail[len(tail.rstrip(b"\r\n")) :].count(b"\n")
    return newlines - trailing + 1


# --- The bytes: encoding and line breaks -------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """What the byte scan found in a file that it accepts."""

    size: int
    crlf: int  # CR LF pairs
    lf_alone: int  # LFs not after a CR
    plain: bool  # the rows (after the header line) hold only PLAIN_BYTES

    @property
    def mixed(self) -> bool:
        """Whether lines end with CRLF and with LF alone (which DuckDB cannot read as is)."""
        return self.crlf > 0 and self.lf_alone > 0


def scan(path: Path, spec: RawFile) -> Layout:
    """Read the file of `spec` at `path` once, in chunks of CHUNK_BYTES, and refuse what is
    not a UTF-8 text with CRLF or LF line breaks (docs/tables.md, "Raw input": line breaks).
    Returns the file's Layout.

    Raises RawExportError naming the file, the line and the cause: the file is missing or
    unreadable; UTF-16 (a byte-order mark FF FE / FE FF, or NUL bytes as UTF-16 writes
    them); a NUL byte; a second UTF-8 byte-order mark; a carriage return (CR) not followed by
    LF outside a quoted value (line breaks that are a CR alone, a doubled CR before LF, a CR
    inside an unquoted value).
    """
    crlf = lf_alone = offset = 0
    plain = True
    names: list[str] = []  # the header's names, as far as the first line tells
    quotes: int | None = None  # quotes before the chunk, counted once a lone CR is found
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                if chunk.endswith(b"\r"):  # keep a CR LF pair in one chunk
                    chunk += handle.read(1)
                if offset == 0:
                    _check_start(path, chunk)
                    names = _first_line_names(chunk)
                if plain:
                    rows = chunk[chunk.find(b"\n") + 1 :] if offset == 0 else chunk
                    plain = not rows.translate(None, PLAIN_BYTES)
                _check_nul(path, chunk, offset)
                _check_bom(path, chunk, offset)
                if chunk.find(b"\r") < 0:
                    lf_alone += chunk.count(b"\n") if crlf else int(chunk.find(b"\n") >= 0)
                else:
                    data = np.frombuffer(chunk, np.uint8)
                    is_cr = data == 13
                    is_lf = data == 10
                    pairs = int(np.count_nonzero(is_cr[:-1] & is_lf[1:]))
                    if pairs != int(np.count_nonzero(is_cr)):
                        if quotes is None:
                            quotes = _quotes_before(path, offset)
                        _check_lone_cr(path, chunk, offset, data, is_cr, is_lf, quotes, names)
                    crlf += pairs
                    lf_alone += int(np.count_nonzero(is_lf)) - pairs
                if quotes is not None:
                    quotes += chunk.count(b'"')
                offset += len(chunk)
    except FileNotFoundError:
        raise RawExportError(
            f"{path}: file is missing; expected the export's {spec.name} with columns "
            f"{', '.join(spec.columns)}"
        ) from None
    except OSError as error:
        raise RawExportError(
            f"{path}: file cannot be read ({error.strerror}); expected the export's "
            f"{spec.name}, readable"
        ) from error
    return Layout(offset, crlf, lf_alone, plain)


def _check_start(path: Path, chunk: bytes) -> None:
    """Refuse a UTF-16 (or UTF-32) byte-order mark, and UTF-16 text without one."""
    if chunk.startswith((b"\xff\xfe", b"\xfe\xff")):
        endian = "little" if chunk.startswith(b"\xff\xfe") else "big"
        raise RawExportError(
            f"{path} line 1: not UTF-8: the file starts with the byte-order mark of UTF-16 "
            f"({endian} endian), {chunk[:2].hex(' ').upper()}; {_UTF8}"
        )
    head = np.frombuffer(chunk[:4096], np.uint8)
    nul = head == 0
    if head.size >= 4 and np.count_nonzero(nul) * 4 >= head.size:
        odd = int(np.count_nonzero(nul[1::2]))
        endian = "little" if odd >= np.count_nonzero(nul[0::2]) else "big"
        raise RawExportError(
            f"{path} line 1: not UTF-8: the file holds NUL bytes (00) between its characters, "
            f"as UTF-16 ({endian} endian) text without a byte-order mark does; {_UTF8}"
        )


def _check_nul(path: Path, chunk: bytes, offset: int) -> None:
    at = chunk.find(b"\0")
    if at >= 0:
        raise RawExportError(
            f"{path} line {_line_at(path, offset + at)}: a NUL byte (00) at byte "
            f"{offset + at + 1} of the file; expected UTF-8 text, which has none ({_UTF8})"
        )


def _check_bom(path: Path, chunk: bytes, offset: int) -> None:
    """Refuse a UTF-8 byte-order mark anywhere but at the start of the file (found by its
    first byte EF, which UTF-8 text rarely holds)."""
    at = chunk.find(b"\xef", 3 if offset == 0 and chunk.startswith(BOM) else 0)
    while at >= 0:
        if chunk[at : at + 3] == BOM:
            raise RawExportError(
                f"{path} line {_line_at(path, offset + at)}: a second byte-order mark (EF BB "
                f"BF) at byte {offset + at + 1}, as when two exports are joined into one file; "
                "expected one at most, at the start of the file"
            )
        at = chunk.find(b"\xef", at + 1)


def _check_lone_cr(
    path: Path,
    chunk: bytes,
    offset: int,
    data: np.ndarray,
    is_cr: np.ndarray,
    is_lf: np.ndarray,
    quotes: int,
    names: list[str],
) -> None:
    """Refuse the first CR of the chunk that is not followed by LF and not inside a quoted
    value (`quotes`: the number of quote characters before the chunk; `names`: the header's
    column names)."""
    lone = np.flatnonzero(is_cr & ~np.append(is_lf[1:], False))
    quote_at = np.flatnonzero(data == 34)
    inside = (quotes + np.searchsorted(quote_at, lone)) % 2 == 1
    outside = lone[~inside]
    if outside.size == 0:
        return  # every lone CR is inside a quoted value: part of the value as written
    at = int(outside[0])
    line = _line_at(path, offset + at)
    if _DOUBLED_CR.match(chunk, at):
        raise RawExportError(
            f"{path} line {line}: the line ends with a doubled carriage return (CR CR LF); "
            "expected CRLF or LF line breaks"
        )
    if (offset == 0 and chunk.find(b"\n") < 0) or at == len(chunk) - 1:
        raise RawExportError(
            f"{path} line {line}: line breaks that are a carriage return alone (CR, as old Mac "
            "programs write them); expected CRLF or LF line breaks"
        )
    column = _column_at(chunk, at, quotes, names)
    where = f", column {column}" if column else ""
    raise RawExportError(
        f"{path} line {line}{where}: a carriage return (CR) not followed by LF, inside an "
        "unquoted value or as a line break of its own; expected CRLF or LF line breaks (a CR "
        "can only be part of a quoted value)"
    )


def _first_line_names(chunk: bytes) -> list[str]:
    """The column names of the first line of the file (up to its first CR or LF), as far as
    they can be read: for naming a column in a message only."""
    first = re.split(rb"[\r\n]", chunk, maxsplit=1)[0].decode("utf-8-sig", "replace")
    try:
        return [name.strip().lower() for name in next(csv.reader([first]), [])]
    except csv.Error:
        return []


def _column_at(chunk: bytes, at: int, quotes: int, names: list[str]) -> str | None:
    """The name (in `names`, the header's) of the field holding byte `at` of the chunk, when
    its record starts on the same line within the chunk; None otherwise."""
    start = chunk.rfind(b"\n", 0, at) + 1
    if start == 0 or (quotes + chunk.count(b'"', 0, start)) % 2:
        return None  # the line starts in another chunk, or inside a quoted value
    parts = chunk[start:at].split(b'"')
    index = sum(part.count(b",") for part in parts[0::2])
    return names[index] if index < len(names) else None


def _quotes_before(path: Path, offset: int) -> int:
    """The number of quote characters in the file's first `offset` bytes."""
    count = 0
    with path.open("rb") as handle:
        while offset > 0:
            chunk = handle.read(min(CHUNK_BYTES, offset))
            count += chunk.count(b'"')
            offset -= len(chunk)
    return count


def _line_at(path: Path, position: int) -> int:
    """The line of the file's byte `position` (counted from 0): 1 + the LFs before it."""
    lines, left = 1, position
    with path.open("rb") as handle:
        while left > 0:
            chunk = handle.read(min(CHUNK_BYTES, left))
            if not chunk:
                break
            lines += chunk.count(b"\n")
            left -= len(chunk)
    return lines


@contextmanager
def _csv_source(path: Path, layout: Layout) -> Iterator[Path]:
    """The file as DuckDB can read it: itself, or for a file whose lines end with CRLF and
    with LF alone, a copy whose lines all end with LF (line breaks inside quoted values kept
    as written), removed afterwards. Lines keep their numbers."""
    if not layout.mixed:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="bike_assets_") as folder:
        copy = Path(folder) / path.name
        quoted, carry = False, b""
        with path.open("rb") as reading, copy.open("wb") as writing:
            while chunk := reading.read(CHUNK_BYTES):
                chunk, carry = carry + chunk, b""
                if chunk.endswith(b"\r"):
                    chunk, carry = chunk[:-1], b"\r"
                parts = chunk.split(b'"')
                first_outside = 1 if quoted else 0
                for i in range(first_outside, len(parts), 2):
                    parts[i] = parts[i].replace(b"\r\n", b"\n")
                quoted = quoted != ((len(parts) - 1) % 2 == 1)
                writing.write(b'"'.join(parts))
            writing.write(carry)
        yield copy


# --- The header -----------------------------------------------------------------------------


def read_header(path: Path, spec: RawFile) -> list[str]:
    """The file's column names, normalized (docs/tables.md, "Raw input"). Raises
    RawExportError naming the file on a missing, empty or non-UTF-8 header, a contract column
    missing or repeated."""
    expected = ", ".join(spec.columns)
    with path.open("rb") as handle:
        first = handle.readline(MAX_LINE_BYTES + 1)
        rest = handle.read(1)
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise RawExportError(
            f"{path} line 1: not UTF-8 (byte {error.start + 1} of the header); {_UTF8}"
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


# --- Faults: the records DuckDB could not split, the values the contract refuses -------------


def _fail_on_rejects(
    conn: duckdb.DuckDBPyConnection, path: Path, csv_path: Path, header: list[str], spec: RawFile
) -> None:
    """Fail on the records DuckDB could not split into the header's fields or decode.

    A record with several faults is named by its first: a wrong number of fields, else the
    first column's.
    """
    rejects = conn.execute(
        """
        select min(byte_position), arg_min(column_name, rank), arg_min(error_type, rank),
               arg_min(error_message, rank), count(*) over ()
        from (select *, coalesce(column_idx, -1) as rank from raw_rejects)
        group by line order by 1 limit ?
        """,
        [MAX_EXAMPLES],
    ).fetchall()
    if not rejects:
        return
    lines = _lines_at(csv_path, [position for position, *_ in rejects])
    as_in_header = dict(zip(_read_names(header, spec), header, strict=True))
    messages = [
        f"{path} line {line}" + _describe_reject(header, as_in_header.get(column), str(kind), text)
        for line, (_, column, kind, text, _) in zip(lines, rejects, strict=True)
    ]
    raise RawExportError(and_more(messages, rejects[0][4]))


def _describe_reject(header: list[str], column: str | None, error_type: str, message: str) -> str:
    found = re.search(r"Found: (\d+)", message)
    fields = f"{found[1] if found else 'a wrong number of'} fields"
    expected = f"expected {len(header)} fields ({', '.join(header)})"
    if error_type == "MISSING COLUMNS":
        return f", column {column}: missing, the row has {fields}; {expected}"
    if error_type == "TOO MANY COLUMNS":
        return f", after column {header[-1]}: the row has {fields}; {expected}"
    if error_type == "INVALID ENCODING":
        return f", column {column}: not valid UTF-8; {_UTF8}"
    if error_type == "UNQUOTED VALUE":
        return (
            f", column {column}: a quoted value is not closed, or text follows its closing "
            'quote; expected "..." with any quote inside written twice'
        )
    if error_type == "LINE SIZE OVER MAXIMUM":
        size = re.search(r"Actual Size:\s*(\d+)", message)
        actual = f"{int(size[1]):,} bytes" if size else "longer"
        return (
            f": the line is too long ({actual}; the reader's limit is {MAX_LINE_BYTES:,} "
            "bytes); expected shorter lines (is a quoted value missing its closing quote?)"
        )
    where = f", column {column}" if column else ""
    return f"{where}: not readable as CSV ({error_type.lower()}: {message})"


def _lines_at(path: Path, positions: list[int]) -> list[int]:
    """The physical line of each byte position that DuckDB reports for a faulty record.

    DuckDB's byte_position points inside the record or just after its line break; its `line`
    does not count line breaks inside quoted values.
    """
    with path.open("rb") as handle:
        data = handle.read(max(positions))
    return [data.count(b"\n", 0, max(position - 1, 0)) + 1 for position in positions]


def _first_broken(conn: duckdb.DuckDBPyConnection, spec: RawFile) -> bool:
    """Whether a typed row of spec.table breaks a value rule of its file (one scan)."""
    if not spec.rules:
        return False
    bad = " or ".join(f"({rule.bad_when.format(c=rule.column)})" for rule in spec.rules)
    (count,) = conn.execute(f"select count(*) from {spec.table} where {bad}").fetchone()
    return count > 0


@dataclass(frozen=True)
class ValueCheck:
    """One rule of a file's values: `bad` (SQL over the columns as written, VARCHAR) holds
    for a value that breaks it; a message says `column` should be `expected`."""

    column: str
    bad: str  # SQL over the written columns
    expected: str


def value_checks(spec: RawFile) -> list[ValueCheck]:
    """Every rule of the file's values (docs/tables.md, "Raw input"), in the order a value is
    judged: per column, missing, then its kind's rules, then the file's value rules over the
    cast value. A row's first broken rule is the one a message names."""
    checks = []
    for column, kind in spec.columns.items():
        if column in spec.not_null:
            checks.append(ValueCheck(column, f"{column} is null", "a value"))
        for rule in KINDS[kind].rules:
            checks.append(
                ValueCheck(
                    column, f"{column} is not null and {rule.bad.format(c=column)}", rule.expected
                )
            )
        for value_rule in (r for r in spec.rules if r.column == column):
            typed = f"cast({column} as {KINDS[kind].sql_type})"
            checks.append(
                ValueCheck(
                    column,
                    f"{column} is not null and {value_rule.bad_when.format(c=typed)}",
                    value_rule.expected,
                )
            )
    return checks


def _suspect(spec: RawFile) -> str:
    """SQL over the written columns: true for a row that a rule may refuse (the reader's fast
    tests and casts, cheap), false for one that every rule accepts."""
    suspects = []
    for column, kind_name in spec.columns.items():
        kind = KINDS[kind_name]
        if column in spec.not_null:
            suspects.append(f"{column} is null")
        if kind.rules:
            fits = f"try_cast({column} as {kind.sql_type})"
            suspects.append(
                f"({column} is not null and not coalesce({kind.fast.format(c=column)} "
                f"and {fits} is not null, false))"
            )
        for rule in (r for r in spec.rules if r.column == column):
            typed = f"try_cast({column} as {kind.sql_type})"
            suspects.append(f"coalesce({rule.bad_when.format(c=typed)}, false)")
    return " or ".join(suspects) or "false"


def _fail_on_values(
    conn: duckdb.DuckDBPyConnection,
    path: Path,
    csv_path: Path,
    header: list[str],
    spec: RawFile,
    cause: duckdb.Error | None,
) -> NoReturn:
    """Read the file again in file order, as written, and fail naming the first faulty values
    by their lines, keys and columns (a row by the first rule it breaks). `cause`: the error
    of the reader's pass, if any. A RuntimeError if no rule finds a fault (a bug: the reader
    refused a value that the rules accept).

    The file is streamed: only the rows the reader's tests suspect are kept, and judged by
    the rules' regular expressions.
    """
    table = f"written_{Path(spec.name).stem}"
    _numbered(conn, path, csv_path, header, spec, table, _suspect(spec), None)
    bad = conn.execute(broken_rows_sql(spec, table, "line")).fetchall()
    conn.execute(f"drop table {table}")
    if not bad:
        raise RuntimeError(
            f"{path}: the reader refused a value that no rule of the contract names"
            + (f": {describe(cause)}" if cause else "")
        ) from cause
    raise broken_rows_error(path, spec, bad)


def broken_rows_sql(spec: RawFile, written: str, order: str) -> str:
    """SQL: the first MAX_EXAMPLES rows of `written` (the file's columns as written, VARCHAR)
    that break a rule of value_checks, by `order` (a row's line or record): (`order`, the
    index of the first rule broken, each contract column, the count of all such rows)."""
    checks = value_checks(spec)
    first = "case " + " ".join(f"when {c.bad} then {i}" for i, c in enumerate(checks)) + " end"
    return f"""
        select {order}, broken, {", ".join(spec.columns)}, count(*) over ()
        from (select *, {first} as broken from {written})
        where broken is not null order by {order} limit {MAX_EXAMPLES}
        """


def broken_rows_error(path: Path, spec: RawFile, bad: Sequence[tuple[Any, ...]]) -> RawExportError:
    """The refusal naming broken_rows_sql's rows (their line first, instead of the record)
    by their lines, keys and columns, each by the first rule it breaks, the value quoted as
    written."""
    checks = value_checks(spec)
    messages = []
    for line, broken, *values, _ in bad:
        row = dict(zip(spec.columns, values, strict=True))
        check = checks[broken]
        value = row[check.column]
        shown = "no value (NULL or empty)" if value is None else f"value {quote_value(value)}"
        messages.append(
            f"{path} line {line} ({key_as_written(spec, row)}), column {check.column}: {shown}; "
            f"expected {check.expected}"
        )
    return RawExportError(and_more(messages, bad[0][-1]))


def quote_value(value: str) -> str:
    """A value as written, quoted for a message (control characters escaped)."""
    return repr(value)


def key_as_written(spec: RawFile, row: dict[str, str | None]) -> str:
    """A row's key as written: 'order_id=1, item_id=2' (NULL when missing)."""
    return ", ".join(
        f"{column}={row[column] if row[column] is not None else 'NULL'}" for column in spec.key
    )


# --- Money ----------------------------------------------------------------------------------


def _check_money(
    conn: duckdb.DuckDBPyConnection,
    path: Path,
    csv_path: Path,
    header: list[str],
    spec: RawFile,
    rows: int,
) -> None:
    """Fail when a line's amount (list_price x quantity), its net price (x (1 - discount)) or
    an order's total net price does not fit DECIMAL(18,2) (docs/tables.md, "Raw input":
    money must fit), naming the lines and the values as written.

    An order's total is bounded by the sum of its lines that can count toward it (quantity
    > 0, discount in [0, 1], list_price >= 0; a line repeated identically once): the others
    are ignored by orders_enriched or quarantined. One DOUBLE pass over spec.table bounds every
    amount; only when it comes near the limit are the amounts computed exactly (Decimal), and
    the file read again for the lines of those that do not fit.
    """
    lines, orders = money_faults(conn, spec)
    if not lines and not orders:
        return
    keys = f"money_{Path(spec.name).stem}"
    conn.execute(
        f"create or replace temp table {keys} as "
        "select unnest(?::bigint[]) as order_id, unnest(?::bigint[]) as item_id",
        [[o for o, _ in lines] + list(orders), [i for _, i in lines] + [None] * len(orders)],
    )
    where = (
        f"exists (select 1 from {keys} k where k.order_id = cast(r.order_id as bigint) "
        "and (k.item_id is null or k.item_id = cast(r.item_id as bigint)))"
    )
    table = f"{keys}_lines"
    _numbered(conn, path, csv_path, header, spec, table, where, rows)
    names = ["line", *spec.columns]
    written = [
        dict(zip(names, values, strict=True))
        for values in conn.execute(f"select * from {table} order by line").fetchall()
    ]
    conn.execute(f"drop table {table}; drop table {keys}")
    raise money_error(path, spec, written, lines, orders)


def money_error(
    path: Path,
    spec: RawFile,
    written: Sequence[dict[str, Any]],
    lines: Mapping[tuple[int, int], tuple[str, Decimal]],
    orders: Mapping[int, Decimal],
) -> RawExportError:
    """The error naming the lines whose net price, and the orders whose total, do not fit
    DECIMAL(18,2), first lines first. `written`: the rows of those lines and orders as the file
    writes them (text values, with their `line`); `lines` and `orders` as _money_faults gives
    them. Both engines build their refusal with it."""
    messages = []
    for row in written:
        fault = lines.get((int(row["order_id"]), int(row["item_id"])))
        if fault is not None:
            messages.append((row["line"], _line_money_message(path, spec, row, *fault)))
    for order_id, total in orders.items():
        counted: dict[tuple, int] = {}  # the order's counted lines, each content once
        for row in written:
            if int(row["order_id"]) == order_id and _counted(row):
                counted.setdefault(tuple(row[c] for c in spec.columns), row["line"])
        first = sorted(counted.values())
        messages.append(
            (
                first[0],
                f"{path} lines {', '.join(str(n) for n in first)} (order_id={order_id}), "
                "columns quantity and list_price: the order's total net price, the sum of its "
                f"lines' list_price x quantity x (1 - discount), is {total} and does not fit "
                f"DECIMAL(18,2); expected at most {MONEY_MAX}",
            )
        )
    messages.sort(key=lambda message: message[0])
    return RawExportError(and_more([text for _, text in messages[:MAX_EXAMPLES]], len(messages)))


def _cents(amount: Decimal) -> Decimal:
    return amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _counted(row: dict[str, str]) -> bool:
    """Whether a line (values as written, valid) can count toward its order's total."""
    return (
        int(row["quantity"]) > 0
        and 0 <= Decimal(row["discount"]) <= 1
        and Decimal(row["list_price"]) >= 0
    )


def money_faults(
    conn: Any, spec: RawFile
) -> tuple[dict[tuple[int, int], tuple[str, Decimal]], dict[int, Decimal]]:
    """The lines and orders of spec.table whose amounts do not fit DECIMAL(18,2) (as
    _money_faults gives them; both empty when all fit). One DOUBLE pass bounds every amount;
    only when it comes near the limit are the amounts computed exactly. `conn`: a DuckDB
    connection, or any object with the same execute(sql).fetchone() (the Spark engine's)."""
    size = "abs(list_price::double * quantity) * greatest(1, abs(1 - discount::double))"
    (bound,) = conn.execute(f"select coalesce(sum({size}), 0) from {spec.table}").fetchone()
    if bound < _MONEY_SURELY_FITS:
        return {}, {}
    with localcontext() as exact:
        exact.prec = 100  # every product of the contract's values is exact
        return _money_faults(conn, spec)


def _money_faults(
    conn: duckdb.DuckDBPyConnection, spec: RawFile
) -> tuple[dict[tuple[int, int], tuple[str, Decimal]], dict[int, Decimal]]:
    """The lines ((order_id, item_id) -> what does not fit, its amount) and the orders
    (order_id -> total) of spec.table whose amounts do not fit DECIMAL(18,2), computed
    exactly from the typed values; an order with a line that does not fit is named by it."""
    near = f"{_MONEY_SURELY_FITS}"
    lines = {}
    for order_id, item_id, list_price, quantity, discount in conn.execute(
        f"select order_id, item_id, list_price, quantity, discount from {spec.table} "
        f"where abs(list_price::double * quantity) * greatest(1, abs(1 - discount::double)) "
        f">= {near}"
    ).fetchall():
        net = list_price * quantity * (1 - discount)
        if abs(_cents(net)) > MONEY_MAX:
            lines[(order_id, item_id)] = ("net price", _cents(net))
    refused = {order_id for order_id, _ in lines}
    orders = {}
    for order_id, prices, quantities, discounts in conn.execute(
        f"""
        select order_id, list(list_price), list(quantity), list(discount)
        from (
            select distinct {", ".join(spec.columns)} from {spec.table}
            where quantity > 0 and discount between 0 and 1 and list_price >= 0
        )
        group by order_id
        having sum(list_price::double * quantity * (1 - discount::double)) >= {near}
        """
    ).fetchall():
        total = _cents(
            sum(
                (p * q * (1 - d) for p, q, d in zip(prices, quantities, discounts, strict=True)),
                Decimal(0),
            )
        )
        if total > MONEY_MAX and order_id not in refused:
            orders[order_id] = total
    return lines, orders


def _line_money_message(
    path: Path, spec: RawFile, row: dict[str, str], what: str, value: Decimal
) -> str:
    columns = "quantity and list_price"
    if not 0 <= Decimal(row["discount"]) <= 1:
        columns = "quantity, list_price and discount"
    formula, values = "list_price x quantity", f"{row['list_price']} x {row['quantity']}"
    if what == "net price":
        formula += " x (1 - discount)"
        values += f" x (1 - {row['discount']})"
    return (
        f"{path} line {row['line']} ({key_as_written(spec, row)}), columns {columns}: the line's "
        f"{what} {formula} = {values} = {value} does not fit DECIMAL(18,2); expected at most "
        f"{MONEY_MAX} in absolute value"
    )


# --- Errors ---------------------------------------------------------------------------------


@contextmanager
def warehouse_errors(
    conn: duckdb.DuckDBPyConnection, doing: str, files: Sequence[tuple[Path, Path]] = ()
) -> Iterator[None]:
    """Raise DuckDB's errors of input/output and memory met while `doing` (e.g. "reading
    <file>") as WarehouseError naming BIKE_DUCKDB_PATH: the warehouse is at fault (disk full,
    permission denied, out of memory), not the export. Only an error that names one of
    `files` ((file of the export, the path DuckDB reads it from)) blames that file, as a
    RawExportError: the byte scan has read it whole just before."""
    try:
        yield
    except (
        duckdb.IOException,
        duckdb.OutOfMemoryException,
        duckdb.PermissionException,
        duckdb.FatalException,
    ) as error:
        text = str(error)
        for path, csv_path in files:
            if str(csv_path) in text or str(path) in text:
                cause = describe(error).replace(str(csv_path), str(path))
                raise RawExportError(f"{path}: file cannot be read ({cause})") from error
        raise WarehouseError(
            _printable(
                f"The warehouse failed while {doing}: {describe(error)}. "
                f"{_warehouse_name(conn)}; the export is not at fault. Free disk space, check "
                "that the warehouse's folder is writable, or raise BIKE_DUCKDB_MEMORY_LIMIT, "
                "then run again."
            )
        ) from error


def _warehouse_name(conn: duckdb.DuckDBPyConnection) -> str:
    """'BIKE_DUCKDB_PATH=<published file> (this run's new version: <file>)' as far as the
    connection tells."""
    try:
        (file,) = conn.execute(
            "select path from duckdb_databases() where database_name = current_database()"
        ).fetchone()
    except duckdb.Error:  # the connection is no longer usable
        return "The warehouse is BIKE_DUCKDB_PATH"
    if not file:
        return "The warehouse is BIKE_DUCKDB_PATH (here an in-memory database)"
    published = file.removesuffix(".candidate")
    return (
        f"The warehouse is BIKE_DUCKDB_PATH={published} (this run's new version is written to "
        f"{file})"
    )


def _printable(text: str) -> str:
    """A message without NUL or other control characters (but line breaks), whatever a file
    holds: they would end up in the run's log."""
    return "".join(
        ch if ch in "\n\t" or (ch.isprintable() and ch != "\ufeff") else repr(ch)[1:-1]
        for ch in text
    )


def and_more(messages: Sequence[str], total: int) -> str:
    """A refusal's text: its first `messages` (one per line), then how many of `total` faulty
    lines it leaves out."""
    more = total - len(messages)
    return "\n".join([*messages, *([f"... and {more} more faulty line(s)"] if more else [])])
