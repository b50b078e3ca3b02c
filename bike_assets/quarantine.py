"""Row faults of the export: which rows are quarantined (never silently dropped), and why."""

from collections.abc import Mapping

import duckdb

from bike_assets.raw import (
    CUSTOMERS,
    EXPORT,
    ORDER_ITEMS,
    ORDERS,
    STORES,
    RawExportError,
    RawFile,
    value_text,
)


def _key_text(spec: RawFile, alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return " || ', ' || ".join(
        f"'{column}=' || coalesce({prefix}{column}::varchar, 'NULL')" for column in spec.key
    )


def _fault(spec: RawFile, column: str, reason_sql: str, source: str) -> str:
    """SQL inserting into `faults` every row of `source` (aliased r) with its reason."""
    return (
        f"insert into faults select '{spec.name}', r.line, {_key_text(spec, 'r')}, "
        f"'{column}', {reason_sql} from {source}"
    )


def _conflicting_duplicates(conn: duckdb.DuckDBPyConnection, spec: RawFile) -> bool:
    """Rows whose key repeats with different content: all of them are quarantined.

    Returns whether any key repeats at all (one GROUP BY of the file, done once).
    """
    key = ", ".join(spec.key)
    content = ", ".join(spec.columns)
    (repeats,) = conn.execute(
        f"select count(*) > 0 from (select 1 from {spec.table} group by {key} having count(*) > 1)"
    ).fetchone()
    if not repeats:
        return False
    conn.execute(
        f"""
        create or replace temp table conflicting as
        select {key} from (
            select distinct {content} from {spec.table}
            semi join (select {key} from {spec.table} group by {key} having count(*) > 1)
            using ({key})
        ) group by {key} having count(*) > 1
        """
    )
    conn.execute(
        _fault(
            spec,
            ", ".join(spec.key),
            "'duplicate key with conflicting content'",
            f"{spec.table} r semi join conflicting using ({key})",
        )
    )
    return True


def _clean(conn: duckdb.DuckDBPyConnection, spec: RawFile, repeats: bool) -> None:
    """clean_<file>: the rows not quarantined, a row repeated identically kept once.

    A file with no repeated key and no quarantined row is clean as read: a view, not a copy.
    """
    key = ", ".join(spec.key)
    (faulty,) = conn.execute("select count(*) from faults where file = ?", [spec.name]).fetchone()
    if not repeats and not faulty:
        conn.execute(f"create or replace temp view clean_{spec.table} as from {spec.table}")
        return
    conn.execute(
        f"""
        create or replace temp table clean_{spec.table} as
        select distinct on ({key}) * from {spec.table}
        anti join (select line from faults where file = '{spec.name}') using (line)
        order by {key}, line
        """
        if repeats
        else f"""
        create or replace temp table clean_{spec.table} as
        select * from {spec.table}
        anti join (select line from faults where file = '{spec.name}') using (line)
        """
    )


def _orphans(conn: duckdb.DuckDBPyConnection, spec: RawFile, column: str, parent: RawFile) -> None:
    """Rows whose `column` is no clean row of `parent`: it is missing there, or quarantined.

    The orphans are found on their own first: DuckDB spills one hash join to disk within its
    memory limit, but two in one query (anti join, then `exists`) can run out of memory.
    """
    conn.execute(
        f"create or replace temp table orphans as "
        f"select r.* from {spec.table} r anti join clean_{parent.table} p using ({column})"
    )
    (found,) = conn.execute("select count(*) from orphans").fetchone()
    if not found:
        return
    in_parent = f"exists (select 1 from {parent.table} q where q.{column} = r.{column})"
    conn.execute(
        _fault(
            spec,
            column,
            f"'{column} ' || r.{column} || if({in_parent}, ' is quarantined in {parent.name}', "
            f"' does not exist in {parent.name}')",
            "orphans r",
        )
    )


def quarantine(conn: duckdb.DuckDBPyConnection) -> None:
    """From the raw_* tables, build the clean_raw_* tables and `rejected` (file, line, key, ...).

    Parents are cleaned before children, so that the rows of a quarantined order, customer or
    store are quarantined in turn.
    """
    conn.execute(
        "create or replace temp table faults "
        "(file varchar, line bigint, key varchar, column_name varchar, reason varchar)"
    )
    for spec in (CUSTOMERS, STORES):
        _clean(conn, spec, _conflicting_duplicates(conn, spec))

    repeats = _conflicting_duplicates(conn, ORDERS)
    _orphans(conn, ORDERS, "customer_id", CUSTOMERS)
    _orphans(conn, ORDERS, "store_id", STORES)
    _clean(conn, ORDERS, repeats)

    repeats = _conflicting_duplicates(conn, ORDER_ITEMS)
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
                f"{ORDER_ITEMS.table} r where {bad_when}",
            )
        )
    _orphans(conn, ORDER_ITEMS, "order_id", ORDERS)
    _clean(conn, ORDER_ITEMS, repeats)

    conn.execute(
        """
        create or replace temp table rejected as
        select file, line, any_value(key) as key,
               string_agg(distinct column_name, ', ' order by column_name) as column_name,
               string_agg(distinct reason, '; ' order by reason) as reason
        from faults group by file, line order by file, line
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
