"""Row faults of the export: which rows are quarantined (never silently dropped), and why
(docs/tables.md, "Raw input" and "intermediate.orders_enriched").

The working tables of the export (work.customers, ...), as `export.read` typed them, are
cleaned in place, and the quarantined rows listed in work.rejected_rows (file, line, key,
column_name, reason), each reason quoting the value as the file writes it.

Quarantined: every row of a key repeated with different content; an order of a customer or
store that does not exist or is quarantined; an order line of an order that does not exist or
is quarantined; an order line whose discount is below 0 or above 1, or whose list_price is
negative. Not faults: a row repeated identically (kept once); a line with quantity <= 0 (a
return or a cancelled line: kept in stg_order_items, ignored by orders_enriched, never counted
toward BIKE_MAX_REJECTED_SHARE); a discount of 1 (a free item).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb

from bike_assets.lib.checks import unique_not_null
from bike_assets.lib.export import (
    CUSTOMERS,
    EXPORT,
    KINDS,
    ORDER_ITEMS,
    ORDERS,
    STORES,
    RawExportError,
    RawFile,
    read_in_file_order,
    warehouse_errors,
)
from bike_assets.lib.sql import source

# Each row of a working table with its row id there (the rows are in no particular order).
_ROWS = "(select rowid as row, * from {table})"
REJECTED = source("rejected_rows")
VALUE = "{value}"  # in a reason: the value of its column as the file writes it


@dataclass(frozen=True)
class LineRule:
    """A value of an order line that is well written but wrong: the line is quarantined."""

    column: str
    bad_when: str  # SQL over r.<column>, the typed value
    expected: str


LINE_RULES = (
    LineRule("discount", "r.discount < 0 or r.discount > 1", "in [0, 1]"),
    LineRule("list_price", "r.list_price < 0", "not negative"),
)


def _key_text(spec: RawFile, alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return " || ', ' || ".join(
        f"'{column}=' || coalesce({prefix}{column}::varchar, 'NULL')" for column in spec.key
    )


def _fault(spec: RawFile, column: str, reason: str, value_column: str | None, rows: str) -> str:
    """SQL inserting into `faults` every row of `rows` (aliased r, with `row`) and why:
    `reason` is SQL text, where VALUE stands for the value of `value_column` as written."""
    value = f"'{value_column}'" if value_column else "null"
    return (
        f"insert into faults select '{spec.name}', r.row, {_key_text(spec, 'r')}, "
        f"'{column}', {reason}, {value} from {rows}"
    )


def _conflicting_duplicates(conn: duckdb.DuckDBPyConnection, spec: RawFile) -> bool:
    """Rows whose key repeats with different content: all of them are quarantined.

    Returns whether any key repeats at all; the keys that do are kept in repeated_<file>.
    The staged table's primary key check (unique and not null) finds them.
    """
    conn.execute(
        "create or replace temp table __failing as "
        + unique_not_null(*spec.key).sql(this=spec.table)
    )
    (repeats,) = conn.execute("select count(*) from __failing").fetchone()
    if not repeats:
        return False
    key = ", ".join(spec.key)
    content = ", ".join(spec.columns)
    repeated = f"repeated_{Path(spec.name).stem}"
    conn.execute(f"create or replace temp table {repeated} as select {key} from __failing")
    conn.execute(
        f"""
        create or replace temp table conflicting as
        select {key} from (
            select distinct {content} from {spec.table} semi join {repeated} using ({key})
        ) group by {key} having count(*) > 1
        """
    )
    conn.execute(
        _fault(
            spec,
            key,
            "'duplicate key with conflicting content'",
            None,
            f"{_ROWS.format(table=spec.table)} r semi join conflicting using ({key})",
        )
    )
    return True


def _clean(conn: duckdb.DuckDBPyConnection, spec: RawFile, repeats: bool) -> None:
    """Delete the quarantined rows from the working table, and keep a row repeated
    identically once. Before that, the quarantined rows are kept in faulty_<file> with their
    faults (to find their lines), and their keys in quarantined_<file> (for the reasons given
    to the rows of other files that refer to them)."""
    key = ", ".join(spec.key)
    stem = Path(spec.name).stem
    conn.execute(
        f"create or replace temp table faulty_{stem} as "
        f"select f.key, f.column_name, f.reason, f.value_column, r.* exclude (row) "
        f"from faults f join {_ROWS.format(table=spec.table)} r using (row) "
        f"where f.file = '{spec.name}'"
    )
    conn.execute(
        f"create or replace temp table quarantined_{stem} as "
        f"select distinct {key} from faulty_{stem}"
    )
    conn.execute(
        f"delete from {spec.table} where rowid in "
        f"(select row from faults where file = '{spec.name}')"
    )
    if repeats:
        conn.execute(
            f"""
            delete from {spec.table} where rowid in (
                select rowid from {spec.table}
                semi join repeated_{stem} using ({key})
                qualify row_number() over (partition by {key} order by rowid) > 1
            )
            """
        )


def _orphans(conn: duckdb.DuckDBPyConnection, spec: RawFile, column: str, parent: RawFile) -> None:
    """Rows whose `column` is in no clean row of `parent`: it is missing there, or quarantined.

    The orphans are found on their own first: DuckDB spills one hash join to disk within its
    memory limit, but two in one query can run out of memory.
    """
    conn.execute(
        f"create or replace temp table orphans as "
        f"select r.* from {_ROWS.format(table=spec.table)} r "
        f"anti join {parent.table} p using ({column})"
    )
    (found,) = conn.execute("select count(*) from orphans").fetchone()
    if not found:
        return
    quarantined = f"quarantined_{Path(parent.name).stem}"
    in_parent = f"r.{column} in (select {column} from {quarantined})"
    conn.execute(
        _fault(
            spec,
            column,
            f"'{column} {VALUE}' || if({in_parent}, ' is quarantined in {parent.name}', "
            f"' does not exist in {parent.name}')",
            column,
            "orphans r",
        )
    )


def quarantine(
    conn: duckdb.DuckDBPyConnection, raw_dir: Path, rows_read: Mapping[str, int]
) -> None:
    """Clean the working tables in place (work.customers, work.stores, work.orders,
    work.order_items, as export.read left them), and build work.rejected_rows (file, line,
    key, column_name, reason): one row per quarantined line, its faults together.

    Parents are cleaned before children, so that the rows of a quarantined order, customer or
    store are quarantined in turn. A file with quarantined rows is read again to find their
    lines (export.read_in_file_order); raises RawExportError as export.read does if it can no
    longer be read, WarehouseError (naming BIKE_DUCKDB_PATH) when the warehouse fails.
    """
    with warehouse_errors(conn, "quarantining the export's faulty rows"):
        _quarantine(conn, raw_dir, rows_read)


def _quarantine(
    conn: duckdb.DuckDBPyConnection, raw_dir: Path, rows_read: Mapping[str, int]
) -> None:
    conn.execute(
        "create or replace temp table faults (file varchar, row bigint, key varchar, "
        "column_name varchar, reason varchar, value_column varchar)"
    )
    for spec in (CUSTOMERS, STORES):
        _clean(conn, spec, _conflicting_duplicates(conn, spec))

    repeats = _conflicting_duplicates(conn, ORDERS)
    _orphans(conn, ORDERS, "customer_id", CUSTOMERS)
    _orphans(conn, ORDERS, "store_id", STORES)
    _clean(conn, ORDERS, repeats)

    repeats = _conflicting_duplicates(conn, ORDER_ITEMS)
    for rule in LINE_RULES:
        conn.execute(
            _fault(
                ORDER_ITEMS,
                rule.column,
                f"'{rule.column} {VALUE} should be {rule.expected}'",
                rule.column,
                f"{_ROWS.format(table=ORDER_ITEMS.table)} r where {rule.bad_when}",
            )
        )
    _orphans(conn, ORDER_ITEMS, "order_id", ORDERS)
    _clean(conn, ORDER_ITEMS, repeats)
    _rejected(conn, raw_dir, rows_read)


def _rejected(conn: duckdb.DuckDBPyConnection, raw_dir: Path, rows_read: Mapping[str, int]) -> None:
    """work.rejected_rows: one row per quarantined line, its faults together.

    A file with faulty rows is streamed again in file order, as written, to find their lines:
    a faulty row is found there by its typed content (rows with the same content have the
    same faults), and its reasons quote the values as written.
    """
    conn.execute(
        f"create or replace table {REJECTED} "
        "(file varchar, line bigint, key varchar, column_name varchar, reason varchar)"
    )
    files = {file for (file,) in conn.execute("select distinct file from faults").fetchall()}
    for spec in (spec for spec in EXPORT if spec.name in files):
        stem = Path(spec.name).stem

        def same(row: str, spec: RawFile = spec) -> str:
            return " and ".join(
                f"cast({row}.{column} as {KINDS[kind].sql_type}) is not distinct from f.{column}"
                for column, kind in spec.columns.items()
            )

        ordered = read_in_file_order(
            conn,
            raw_dir,
            spec,
            f"ordered_{stem}",
            where=f"exists (select 1 from faulty_{stem} f where {same('r')})",
            records=rows_read[spec.name],
        )
        value = (
            "case f.value_column "
            + " ".join(f"when '{column}' then o.{column}" for column in spec.columns)
            + " end"
        )
        reason = f"replace(f.reason, '{VALUE}', coalesce({value}, 'NULL'))"
        conn.execute(
            f"""
            insert into {REJECTED}
            select '{spec.name}', o.line, any_value(f.key),
                   string_agg(distinct f.column_name, ', ' order by f.column_name),
                   string_agg(distinct {reason}, '; ' order by {reason})
            from {ordered} o
            join faulty_{stem} f on {same("o")}
            group by o.line
            """
        )
        conn.execute(f"drop table {ordered}")


def check_rejected_share(
    conn: duckdb.DuckDBPyConnection, rows_read: Mapping[str, int], max_share: float
) -> None:
    """Fail when a file has more quarantined rows (work.rejected_rows) than
    BIKE_MAX_REJECTED_SHARE allows of the rows read (`rows_read`: file name -> rows).

    Lines with quantity <= 0 are never quarantined, so they never count. Raises
    RawExportError naming the file, the share and the first three quarantined lines.
    """
    for spec in EXPORT:
        (rejected,) = conn.execute(
            f"select count(*) from {REJECTED} where file = ?", [spec.name]
        ).fetchone()
        share = rejected / rows_read[spec.name]
        if share > max_share:
            first = conn.execute(
                f"select line, key, column_name, reason from {REJECTED} where file = ? "
                "order by line limit 3",
                [spec.name],
            ).fetchall()
            examples = "; ".join(
                f"line {line} ({key}), column {column}: {reason}"
                for line, key, column, reason in first
            )
            raise RawExportError(
                f"{spec.name}: {rejected} of {rows_read[spec.name]} rows ({share:.2%}) were "
                f"quarantined, more than BIKE_MAX_REJECTED_SHARE={max_share:g}. First: {examples}"
            )
