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
    read_in_file_order,
    record_lines,
    value_text,
)

# Each row of a scratch table with its row id there (the rows are in no particular order).
_ROWS = "(select rowid as row, * from {table})"

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
    """SQL inserting into `faults` every row of `source` (aliased r, with `row`) and why."""
    return (
        f"insert into faults select '{spec.name}', r.row, {_key_text(spec, 'r')}, "
        f"'{column}', {reason_sql} from {source}"
    )


def _conflicting_duplicates(conn: duckdb.DuckDBPyConnection, spec: RawFile, audit: Audit) -> bool:
    """Rows whose key repeats with different content: all of them are quarantined.

    Returns whether any key repeats at all; the keys that do are kept in repeated_<file>.
    The staged table's primary key check tells (run once: its result is the staged table's).
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
    conn: duckdb.DuckDBPyConnection, raw_dir: Path, rows_read: Mapping[str, int], audit: Audit
) -> None:
    """Clean the scratch tables in place, and build `rejected` (file, line, key, column, reason).

    Parents are cleaned before children, so that the rows of a quarantined order, customer or
    store are quarantined in turn. Repeated keys and unknown references are found by running
    the staged tables' own checks on the scratch tables (`audit`).
    """
    conn.execute(
        "create or replace temp table faults "
        "(file varchar, row bigint, key varchar, column_name varchar, reason varchar)"
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
                f"{_ROWS.format(table=ORDER_ITEMS.table)} r where {bad_when}",
            )
        )
    _orphans(conn, ORDER_ITEMS, "order_id", ORDERS, audit)
    _clean(conn, ORDER_ITEMS, repeats)
    _rejected(conn, raw_dir, rows_read)


def _rejected(conn: duckdb.DuckDBPyConnection, raw_dir: Path, rows_read: Mapping[str, int]) -> None:
    """`rejected`: one row per quarantined line, its faults together.

    A file with faulty rows is read again in file order to find their lines: a faulty row is
    found there by its content (rows with the same content have the same faults).
    """
    conn.execute(
        "create or replace temp table rejected "
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
            insert into rejected
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
