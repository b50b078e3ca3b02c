"""Row faults of the export: which rows are quarantined (never silently dropped), and why."""

from collections.abc import Callable, Mapping
from pathlib import Path

import duckdb

from bike_assets import checks
from bike_assets.raw import (
    CUSTOMERS,
    EXPORT,
    ORDER_ITEMS,
    ORDERS,
    STORES,
    RawExportError,
    RawFile,
    record_lines,
    value_text,
)

# Each row of a scratch table with its record number in the file (from 1).
_RECORDS = "(select rowid + 1 as record, * from {table})"

# Runs a check of the file's staged table on its scratch table (the other staged tables read
# as their scratch tables) and says whether it passed; the failing rows are left in __failing.
Audit = Callable[[RawFile, checks.Check], bool]


def staged_name(spec: RawFile) -> str:
    """The staged table a file becomes (orders.csv: stg_orders)."""
    return f"stg_{Path(spec.name).stem}"


def _key_text(spec: RawFile, alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return " || ', ' || ".join(
        f"'{column}=' || coalesce({prefix}{column}::varchar, 'NULL')" for column in spec.key
    )


def _fault(spec: RawFile, column: str, reason_sql: str, source: str) -> str:
    """SQL inserting into `faults` every row of `source` (aliased r, with `record`) and why."""
    return (
        f"insert into faults select '{spec.name}', r.record, {_key_text(spec, 'r')}, "
        f"'{column}', {reason_sql} from {source}"
    )


def _conflicting_duplicates(conn: duckdb.DuckDBPyConnection, spec: RawFile, audit: Audit) -> bool:
    """Rows whose key repeats with different content: all of them are quarantined.

    Returns whether any key repeats at all; the keys that do are kept in repeated_<file>.
    The staged table's primary key check tells, in the one GROUP BY of the file needed.
    """
    if audit(spec, checks.primary_key(*spec.key)):
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
            f"{_RECORDS.format(table=spec.table)} r semi join conflicting using ({key})",
        )
    )
    return True


def _clean(conn: duckdb.DuckDBPyConnection, spec: RawFile, repeats: bool) -> None:
    """Delete the quarantined rows from the scratch table, and keep a row repeated identically
    once (its first line). The keys quarantined are kept in quarantined_<file>, for the
    reasons given to the rows of other files that refer to them."""
    key = ", ".join(spec.key)
    faulty = f"(select record - 1 from faults where file = '{spec.name}')"
    conn.execute(
        f"create or replace temp table quarantined_{Path(spec.name).stem} as "
        f"select distinct {key} from {spec.table} where rowid in {faulty}"
    )
    conn.execute(f"delete from {spec.table} where rowid in {faulty}")
    if repeats:
        conn.execute(
            f"""
            delete from {spec.table} where rowid in (
                select rowid from {spec.table}
                semi join repeated_{Path(spec.name).stem} using ({key})
                qualify row_number() over (partition by {key} order by rowid) > 1
            )
            """
        )


def _orphans(
    conn: duckdb.DuckDBPyConnection, spec: RawFile, column: str, parent: RawFile, audit: Audit
) -> None:
    """Rows whose `column` is in no clean row of `parent`: it is missing there, or quarantined.

    The staged table's reference check tells whether there are any. The orphans are then found
    on their own first: DuckDB spills one hash join to disk within its memory limit, but two
    in one query can run out of memory.
    """
    if audit(spec, checks.references(column, staged_name(parent))):
        return
    conn.execute(
        f"create or replace temp table orphans as "
        f"select r.* from {_RECORDS.format(table=spec.table)} r "
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
    conn: duckdb.DuckDBPyConnection, raw_dir: Path, rows_read: Mapping[str, int], audit: Audit
) -> None:
    """Clean the scratch tables in place, and build `rejected` (file, line, key, column, reason).

    Parents are cleaned before children, so that the rows of a quarantined order, customer or
    store are quarantined in turn. Repeated keys and unknown references are found by running
    the staged tables' own checks on the scratch tables (`audit`).
    """
    conn.execute(
        "create or replace temp table faults "
        "(file varchar, record bigint, key varchar, column_name varchar, reason varchar)"
    )
    for spec in (CUSTOMERS, STORES):
        _clean(conn, spec, _conflicting_duplicates(conn, spec, audit))

    repeats = _conflicting_duplicates(conn, ORDERS, audit)
    _orphans(conn, ORDERS, "customer_id", CUSTOMERS, audit)
    _orphans(conn, ORDERS, "store_id", STORES, audit)
    _clean(conn, ORDERS, repeats)

    repeats = _conflicting_duplicates(conn, ORDER_ITEMS, audit)
    for column, bad_when, expected in (
        ("discount", "r.discount < 0 or r.discount >= 1", "in [0, 1)"),
        ("list_price", "r.list_price < 0", "not negative"),
        ("quantity", "r.quantity < 0", "not negative"),
    ):
        value = value_text(f"r.{column}", ORDER_ITEMS.columns[column])
        conn.execute(
            _fault(
                ORDER_ITEMS,
                column,
                f"'{column} ' || {value} || ' should be {expected}'",
                f"{_RECORDS.format(table=ORDER_ITEMS.table)} r where {bad_when}",
            )
        )
    _orphans(conn, ORDER_ITEMS, "order_id", ORDERS, audit)
    _clean(conn, ORDER_ITEMS, repeats)
    _rejected(conn, raw_dir, rows_read)


def _rejected(conn: duckdb.DuckDBPyConnection, raw_dir: Path, rows_read: Mapping[str, int]) -> None:
    """`rejected`: one row per quarantined line, its faults together; lines are looked up only
    in the files that have some."""
    conn.execute(
        "create or replace temp table rejected "
        "(file varchar, line bigint, key varchar, column_name varchar, reason varchar)"
    )
    files = [file for (file,) in conn.execute("select distinct file from faults").fetchall()]
    for file in files:
        lines = record_lines(conn, raw_dir / file, rows_read[file])
        conn.execute(
            f"""
            insert into rejected
            select file, line, any_value(key),
                   string_agg(distinct column_name, ', ' order by column_name),
                   string_agg(distinct reason, '; ' order by reason)
            from faults join {lines} using (record)
            where file = ?
            group by file, line
            """,
            [file],
        )


def check_rejected_share(
    conn: duckdb.DuckDBPyConnection, rows_read: Mapping[str, int], max_share: float
) -> None:
    """Fail when a file has more quarantined rows than BIKE_MAX_REJECTED_SHARE allows."""
    for spec in EXPORT:
        (rejected,) = conn.execute(
            "select count(*) from rejected where file = ?", [spec.name]
        ).fetchone()
        share = rejected / rows_read[spec.name]
        if share > max_share:
            first = conn.execute(
                "select line, key, column_name, reason from rejected where file = ? "
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
