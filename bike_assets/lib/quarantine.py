"""Row faults of the export: which rows are quarantined (never silently dropped), and why
(docs/tables.md, "Raw input" and "intermediate.orders_enriched").

Quarantined: every row of a key repeated with different content; an order of a customer or
store that does not exist or is quarantined; an order line of an order that does not exist or
is quarantined; an order line whose discount is below 0 or above 1, or whose list_price is
negative. Not faults: a row repeated identically (kept once); a line with quantity <= 0 (a
return or a cancelled line: kept in stg_order_items, ignored by orders_enriched, never counted
toward BIKE_MAX_REJECTED_SHARE); a discount of 1 (a free item).

Each rule is written once here, as a SELECT in DuckDB's SQL, and both engines run the same
statements (`quarantine_rows`, over `Rows`: DuckDB deletes the quarantined rows from its
working tables in place, Spark writes the kept rows anew). What differs is how a row is
named: DuckDB by the line it starts on, found by reading the file again; Spark from the
record-to-line mapping of lib/export.py. Both build work.rejected_rows with
`rejected_rows_sql`, the reasons quoting the values as the file writes them.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import duckdb

from bike_assets.lib.checks import key_id
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
from bike_assets.lib.sql import expand, source

REJECTED = source("rejected_rows")
VALUE = "{value}"  # in a reason: the value of its column as the file writes it
# A fault of a row: (file, record, key, column_name, reason, value_column); `record` is the
# row's id in its working table, `value_column` the column whose value VALUE stands for.


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


@dataclass(frozen=True)
class Reference:
    """A column of a file that names a row of `parent` (by its key column of the same name)."""

    column: str
    parent: RawFile


REFERENCES: Mapping[str, tuple[Reference, ...]] = {
    ORDERS.name: (Reference("customer_id", CUSTOMERS), Reference("store_id", STORES)),
    ORDER_ITEMS.name: (Reference("order_id", ORDERS),),
}
PARENTS = {ref.parent.name for refs in REFERENCES.values() for ref in refs}


def working(spec: RawFile, what: str) -> str:
    """The name of one of a file's working tables: work.<what>_<file stem>."""
    return source(f"{what}_{Path(spec.name).stem}")


def key_text(spec: RawFile, alias: str) -> str:
    """SQL: a row's key as text, 'order_id=1, item_id=2' (NULL when missing)."""
    return " || ', ' || ".join(
        f"'{column}=' || coalesce(cast({alias}.{column} as varchar), 'NULL')" for column in spec.key
    )


def _fault(spec: RawFile, column: str, reason: str, value_column: str | None, rows: str) -> str:
    """SQL: a fault (file, record, key, column_name, reason, value_column) of every row of
    `rows` (aliased r): `reason` is SQL text, where VALUE stands for the value of
    `value_column` as written."""
    value = f"'{value_column}'" if value_column else "cast(null as varchar)"
    return (
        f"select '{spec.name}' as file, r.record, {key_text(spec, 'r')} as key, "
        f"'{column}' as column_name, {reason} as reason, {value} as value_column from {rows}"
    )


def repeated_keys_sql(spec: RawFile, rows: str) -> str:
    """SQL: the keys (spec.key's columns) that more than one row of `rows` has (the reader has
    refused a missing key): the check unique_not_null's macro, repeated_keys."""
    repeated = expand(
        "repeated_keys(rows, columns, id)", rows=rows, columns=spec.key, id=key_id(spec.key)
    )
    return f"select {', '.join(spec.key)} from ({repeated})"


def _conflicting(spec: RawFile, rows: str, repeated: str) -> str:
    """Faults: every row of a key repeated (`repeated`: repeated_keys_sql's table) with
    different content."""
    key = ", ".join(spec.key)
    content = ", ".join(spec.columns)
    conflicting = (
        f"(select {key} from (select distinct {content} from {rows} semi join {repeated} "
        f"using ({key})) group by {key} having count(*) > 1)"
    )
    return _fault(
        spec,
        key,
        "'duplicate key with conflicting content'",
        None,
        f"{rows} r semi join {conflicting} c using ({key})",
    )


def _line_rule(rule: LineRule, rows: str) -> str:
    """Faults: the order lines that break `rule`."""
    return _fault(
        ORDER_ITEMS,
        rule.column,
        f"'{rule.column} {VALUE} should be {rule.expected}'",
        rule.column,
        f"{rows} r where {rule.bad_when}",
    )


def _orphans(spec: RawFile, reference: Reference, rows: str, kept: str, quarantined: str) -> str:
    """Faults: the rows whose reference is in no kept row of its parent (`kept`): it is
    missing there, or quarantined (`quarantined`: the parent's quarantined keys). One large
    join (the anti join); the other is with the few quarantined keys."""
    column, parent = reference.column, reference.parent.name
    reason = (
        f"'{column} {VALUE}' || case when q.{column} is not null "
        f"then ' is quarantined in {parent}' else ' does not exist in {parent}' end"
    )
    return _fault(
        spec,
        column,
        reason,
        column,
        f"{rows} r anti join {kept} p on p.{column} = r.{column} "
        f"left join {quarantined} q on q.{column} = r.{column}",
    )


def faults_sql(
    spec: RawFile, rows: str, repeated: str | None, kept: Mapping[str, str]
) -> str | None:
    """SQL: every fault of the file's rows (`rows`: a relation with `record` and the
    contract's columns, typed): file, record, key, column_name, reason, value_column; None
    when no rule applies.

    `repeated`: the table of its repeated keys (repeated_keys_sql), None when none repeats;
    `kept`: for each parent file (by name), its kept rows, already cleaned.
    """
    selects = [_conflicting(spec, rows, repeated)] if repeated else []
    if spec is ORDER_ITEMS:
        selects += [_line_rule(rule, rows) for rule in LINE_RULES]
    for reference in REFERENCES.get(spec.name, ()):
        quarantined = working(reference.parent, "quarantined")
        selects.append(_orphans(spec, reference, rows, kept[reference.parent.name], quarantined))
    return " union all ".join(selects) or None


def quarantined_keys_sql(spec: RawFile, rows: str, faults: str | None) -> str:
    """SQL: the keys of the rows that have a fault (`faults`: faults_sql's table, None when
    the file has none), for the reasons given to the rows of other files that refer to them."""
    key = ", ".join(f"r.{column}" for column in spec.key)
    if faults is None:
        return f"select {key} from {rows} r where false"
    return f"select distinct {key} from {rows} r semi join {faults} f on f.record = r.record"


def dropped_records_sql(spec: RawFile, rows: str, faults: str | None, repeated: str | None) -> str:
    """SQL: the records of the rows that are not kept (column `record`): those with a fault,
    and each row of a repeated key after its first (a row repeated identically is kept once;
    when the content conflicts, every row has a fault)."""
    dropped = [f"select record from {faults}"] if faults else []
    if repeated:
        key = ", ".join(spec.key)
        dropped.append(
            f"select record from {rows} semi join {repeated} using ({key}) "
            f"qualify row_number() over (partition by {key} order by record) > 1"
        )
    return " union all ".join(dropped)


def reason_as_written(spec: RawFile, written: str) -> str:
    """SQL: a fault's reason (aliased f) with VALUE replaced by the value of its column as
    written, from the row `written` (its columns as text)."""
    value = (
        "case f.value_column "
        + " ".join(f"when '{column}' then {written}.{column}" for column in spec.columns)
        + " end"
    )
    return f"replace(f.reason, '{VALUE}', coalesce({value}, 'NULL'))"


def rejected_rows_sql(per_line: Sequence[str]) -> str:
    """SQL: work.rejected_rows (file, line, key, column_name, reason), one row per quarantined
    line, its faults together, from SELECTs of (file, line, key, column_name, reason), one per
    fault."""
    faults = " union all ".join(per_line) or (
        "select cast(null as varchar) as file, cast(null as bigint) as line, "
        "cast(null as varchar) as key, cast(null as varchar) as column_name, "
        "cast(null as varchar) as reason where false"
    )
    return f"""
        select file, line, any_value(key) as key,
               string_agg(distinct column_name, ', ' order by column_name) as column_name,
               string_agg(distinct reason, '; ' order by reason) as reason
        from ({faults}) group by file, line
        """


class Rows(Protocol):
    """What `quarantine_rows` asks of an engine, over the run's working tables."""

    def rows(self, spec: RawFile) -> str:
        """The file's rows as the models will read them: a relation (table or subquery) with
        `record`, the row's id, and the contract's columns, typed."""
        ...

    def create(self, table: str, select: str) -> int:
        """Make `select`'s result the working table `table`; returns its rows."""
        ...

    def drop(self, spec: RawFile, records: str, faults: str | None) -> None:
        """Leave out the rows whose record `records` (SQL) selects. `faults`: the file's
        table of faults (None when it has none), for an engine that keeps the faulty rows'
        content before they go (DuckDB, to find their lines)."""
        ...


def quarantine_rows(engine: Rows) -> dict[str, str]:
    """Find the faults of the export's rows and leave out the quarantined rows (and the extra
    copies of a row repeated identically), parents before children, so that the rows of a
    quarantined order, customer or store are quarantined in turn. Returns, for each file with
    faults, its table of faults (work.faults_<file>: file, record, key, column_name, reason,
    value_column)."""
    kept: dict[str, str] = {}
    found: dict[str, str] = {}
    for spec in EXPORT:
        rows = engine.rows(spec)
        repeated: str | None = working(spec, "repeated")
        if not engine.create(repeated, repeated_keys_sql(spec, rows)):
            repeated = None
        faults: str | None = None
        select = faults_sql(spec, rows, repeated, kept)
        if select and engine.create(working(spec, "faults"), select):
            faults = found[spec.name] = working(spec, "faults")
        if spec.name in PARENTS:
            engine.create(working(spec, "quarantined"), quarantined_keys_sql(spec, rows, faults))
        if faults or repeated:
            engine.drop(spec, dropped_records_sql(spec, rows, faults, repeated), faults)
        kept[spec.name] = engine.rows(spec)
    return found


class DuckDBRows:
    """The quarantine on DuckDB: the working tables (work.customers, ... as export.read
    typed them, `record` being DuckDB's rowid) are cleaned in place; a faulty row is kept in
    work.faulty_<file> (its faults and its typed content) to find its line later."""

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self.conn = conn

    def rows(self, spec: RawFile) -> str:
        return f"(select rowid as record, * from {spec.table})"

    def create(self, table: str, select: str) -> int:
        self.conn.execute(f"create or replace table {table} as {select}")
        (rows,) = self.conn.execute(f"select count(*) from {table}").fetchone()
        return rows

    def drop(self, spec: RawFile, records: str, faults: str | None) -> None:
        if faults:
            content = ", ".join(f"r.{column}" for column in spec.columns)
            self.create(
                working(spec, "faulty"),
                f"select f.key, f.column_name, f.reason, f.value_column, {content} "
                f"from {faults} f join {self.rows(spec)} r using (record)",
            )
        self.conn.execute(f"delete from {spec.table} where rowid in ({records})")


def quarantine(
    conn: duckdb.DuckDBPyConnection, raw_dir: Path, rows_read: Mapping[str, int]
) -> None:
    """Clean the working tables in place (work.customers, work.stores, work.orders,
    work.order_items, as export.read left them), and build work.rejected_rows (file, line,
    key, column_name, reason): one row per quarantined line, its faults together.

    A file with quarantined rows is read again to find their lines (export.read_in_file_order);
    raises RawExportError as export.read does if it can no longer be read, WarehouseError
    (naming BIKE_DUCKDB_PATH) when the warehouse fails.
    """
    with warehouse_errors(conn, "quarantining the export's faulty rows"):
        found = quarantine_rows(DuckDBRows(conn))
        per_line = [
            _lines_of_faults(conn, raw_dir, spec, rows_read[spec.name])
            for spec in EXPORT
            if spec.name in found
        ]
        conn.execute(f"create or replace table {REJECTED} as {rejected_rows_sql(per_line)}")


def _lines_of_faults(
    conn: duckdb.DuckDBPyConnection, raw_dir: Path, spec: RawFile, records: int
) -> str:
    """SQL: each fault of the file with the line of its row (file, line, key, column_name,
    reason as written). The file is streamed again in file order, as written: a faulty row
    is found there by its typed content (rows with the same content have the same faults)."""
    faulty = working(spec, "faulty")

    def same(row: str) -> str:
        return " and ".join(
            f"cast({row}.{column} as {KINDS[kind].sql_type}) is not distinct from f.{column}"
            for column, kind in spec.columns.items()
        )

    ordered = read_in_file_order(
        conn,
        raw_dir,
        spec,
        f"ordered_{Path(spec.name).stem}",
        where=f"exists (select 1 from {faulty} f where {same('r')})",
        records=records,
    )
    return (
        f"select '{spec.name}' as file, o.line, f.key, f.column_name, "
        f"{reason_as_written(spec, 'o')} as reason from {ordered} o join {faulty} f on {same('o')}"
    )


def check_rejected_share(
    conn: duckdb.DuckDBPyConnection, rows_read: Mapping[str, int], max_share: float
) -> None:
    """Fail when a file has more quarantined rows (work.rejected_rows) than
    BIKE_MAX_REJECTED_SHARE allows of the rows read (`rows_read`: file name -> rows). Runs on
    either engine's connection (DuckDB's, or lib/spark.SparkConnection).

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
