"""Row faults of the export: which rows are quarantined (never silently dropped), and why.

The working tables of the export (work.customers, ...) are cleaned in place, and the
quarantined rows listed in work.rejected_rows (file, line, key, column_name, reason).
"""

from collections.abc import Mapping
from pathlib import Path

import duckdb

from bike_assets.lib.checks import unique_not_null
from bike_assets.lib.export import (
    CUSTOMERS,
    EXPORT,
    ORDER_ITEMS,
    ORDERS,
    STORES,
    RawExportError,
    RawFile,
    read_in_file_order,
    record_lines,
    value_text,
)
from bike_assets.lib.sql import source

# Each row of a working table with its row id there (the rows are in no particular order).
_ROWS = "(select rowid as row, * from {table})"
REJECTED = source("rejected_rows")


def _key_text(spec: RawFile, alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return " || ', ' || ".join(
        f"'{column}=' || coalesce({prefix}{column}::varchar, 'NULL')" for column in spec.key
    )


def _fault(spec: RawFile, column: str, reason_sql: str, source: str) -> str:
    """SQL inserting into `faults` every row of `source` (aliased r, with `row`) and why."""
    return (
        f"insert into faults select '{spec.name}', r.row, {_key_text(spec, 'r')}, "
        f"'{column}', {reason_sql} from {source}"
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
            f"{_ROWS.format(table=spec.table)} r semi join conflicting using ({key})",
        )
    )
    return True


def _clean(conn: duckdb.DuckDBPyConnection, spec: RawFile, repeats: bool) -> None:
    """Delete the quarantined rows from the scratch table, and keep a row repeated identically
    once. Before that, the quarantined rows are kept in faulty_<file> with their faults (to
    find their lines), and their keys in quarantined_<file> (for the reasons given to the rows
    of other files that refer to them)."""
    key = ", ".join(spec.key)
    stem = Path(spec.name).stem
    conn.execute(
        f"create or replace temp table faulty_{stem} as "
        f"select f.key, f.column_name, f.reason, r.* exclude (row) "
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
            f"'{column} ' || r.{column} || if({in_parent}, ' is quarantined in {parent.name}', "
            f"' does not exist in {parent.name}')",
            "orphans r",
        )
    )


def quarantine(
    conn: duckdb.DuckDBPyConnection, raw_dir: Path, rows_read: Mapping[str, int]
) -> None:
    """Clean the working tables in place, and build work.rejected_rows (file, line, key,
    column_name, reason).

    Parents are cleaned before children, so that the rows of a quarantined order, customer or
    store are quarantined in turn.
    """
    conn.execute(
        "create or replace temp table faults "
        "(file varchar, row bigint, key varchar, column_name varchar, reason varchar)"
    )
    for spec in (CUSTOMERS, STORES):
        _clean(conn, spec, _conflicting_duplicates(conn, spec))

    repeats = _conflicting_duplicates(conn, ORDERS)
    _orphans(conn, ORDERS, "customer_id", CUSTOMERS)
    _orphans(conn, ORDERS, "store_id", STORES)
    _clean(conn, ORDERS, repeats)

    repeats = _conflicting_duplicates(conn, ORDER_ITEMS)
    for column, bad_when, expected in (
        ("discount", "r.discount < 0 or r.discount > 1", "in [0, 1]"),
        ("list_price", "r.list_price < 0", "not negative"),
    ):
        value = value_text(f"r.{column}", ORDER_ITEMS.columns[column])
        conn.execute(
            _fault(
                ORDER_ITEMS,
                column,
                f"'{column} ' || {value} || ' should be {expected}'",
                f"{_ROWS.format(table=ORDER_ITEMS.table)} r where {bad_when}",
            )
        )
    _orphans(conn, ORDER_ITEMS, "order_id", ORDERS)
    _clean(conn, ORDER_ITEMS, repeats)
    _rejected(conn, raw_dir, rows_read)


def _rejected(conn: duckdb.DuckDBPyConnection, raw_dir: Path, rows_read: Mapping[str, int]) -> None:
    """`rejected`: one row per quarantined line, its faults together.

    A file with faulty rows is read again in file order to find their lines: a faulty row is
    found there by its content (rows with the same content have the same faults).
    """
    conn.execute(
        f"create or replace table {REJECTED} "
        "(file varchar, line bigint, key varchar, column_name varchar, reason varchar)"
    )
    files = {file for (file,) in conn.execute("select distinct file from faults").fetchall()}
    for spec in (spec for spec in EXPORT if spec.name in files):
        stem = Path(spec.name).stem
        ordered = read_in_file_order(conn, raw_dir, spec, f"ordered_{stem}", guarded=True)
        same = " and ".join(f"o.{c} is not distinct from f.{c}" for c in spec.columns)
        lines = record_lines(conn, raw_dir / spec.name, rows_read[spec.name])
        conn.execute(
            f"""
            insert into {REJECTED}
            select '{spec.name}', l.line, any_value(f.key),
                   string_agg(distinct f.column_name, ', ' order by f.column_name),
                   string_agg(distinct f.reason, '; ' order by f.reason)
            from (select rowid + 1 as record, * from {ordered}) o
            join faulty_{stem} f on {same}
            join {lines} l using (record)
            group by l.line
            """
        )


def check_rejected_share(
    conn: duckdb.DuckDBPyConnection, rows_read: Mapping[str, int], max_share: float
) -> None:
    """Fail when a file has more quarantined rows than BIKE_MAX_REJECTED_SHARE allows."""
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
