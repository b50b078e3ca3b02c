"""Write-audit-publish: an asset builds its tables as staged copies, audits them, then publishes.

A table's new version is written beside the published one (`schema.__staged_table`), its
checks run on it, and only when no ERROR check fails does the IO manager swap it in, in one
transaction. A failed check fails the run; the published table keeps its last good content.
Run with only checks selected (the audit job), the same checks read the published tables.
"""

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import dagster as dg
import duckdb

from bike_assets.checks import ERROR, Check, columns_match, markdown_table
from bike_assets.warehouse import StagedTable

OWNERS = ["team:local-bike-data"]
PREVIEW_ROWS = 10


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # DuckDB type, as DESCRIBE shows it
    description: str


@dataclass(frozen=True)
class Table:
    """A published table: where it lives, what it means, its columns and its checks."""

    schema: str
    name: str
    description: str
    columns: tuple[Column, ...]
    checks: tuple[Check, ...] = ()
    # Extra materialization metadata (charts, previews), computed from the staged table.
    metadata: Callable[[duckdb.DuckDBPyConnection, str], Mapping[str, Any]] | None = field(
        default=None, compare=False
    )

    @property
    def key(self) -> dg.AssetKey:
        return dg.AssetKey([self.schema, self.name])

    @property
    def published(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def all_checks(self) -> tuple[Check, ...]:
        return (columns_match([(c.name, c.type) for c in self.columns]), *self.checks)

    def asset_out(self, group_name: str) -> dg.AssetOut:
        schema = dg.TableSchema(
            columns=[
                dg.TableColumn(c.name, c.type, description=c.description) for c in self.columns
            ]
        )
        return dg.AssetOut(
            key=self.key,
            description=self.description,
            group_name=group_name,
            owners=OWNERS,
            kinds={"duckdb", "sql"},
            is_required=False,
            metadata={"dagster/column_schema": schema, "dagster/table_name": self.published},
        )


@dataclass(frozen=True)
class Scratch:
    """A table that build() wrote itself in the warehouse, in the table's schema, named
    __scratch_*: it becomes the staged copy by a rename (no copy of its rows).

    `audited`: results of the table's checks that build already ran on it and that passed.
    They are reported as they are, not run again: build may only have removed rows since, and
    these checks (keys unique, references known) cannot start failing by losing rows.
    """

    relation: str  # schema.__scratch_name
    audited: tuple[dg.AssetCheckResult, ...] = ()


Build = Callable[[dg.AssetExecutionContext, duckdb.DuckDBPyConnection], Mapping[str, str | Scratch]]


def warehouse_asset(
    *,
    name: str,
    description: str,
    group_name: str,
    tables: Sequence[Table],
    reads: Sequence[Table | dg.AssetSpec] = (),
    build: Build,
    config_schema: Mapping[str, dg.Field] | None = None,
) -> dg.AssetsDefinition:
    """An asset (one op) that builds `tables` with write-audit-publish.

    `build(context, conn)` prepares what it needs and returns, for each table, its SELECT (in
    which `{name}` stands for any table of `reads` or of `tables`, their staged copies) or the
    Scratch table it built. What build leaves in temp or in __scratch_* tables is dropped.
    """
    by_key = {table.key: table for table in tables}
    upstream = {t.name: t.published for t in reads if isinstance(t, Table)}
    staged = {t.name: StagedTable(t.schema, t.name) for t in tables}

    @dg.multi_asset(
        name=name,
        description=description,
        outs={table.name: table.asset_out(group_name) for table in tables},
        deps=[t.key for t in reads],
        check_specs=[check.spec(table.key) for table in tables for check in table.all_checks],
        can_subset=True,
        config_schema=config_schema,
        required_resource_keys={"warehouse", "raw_export", "pii_key", "calendar"},
    )
    def _asset(context: dg.AssetExecutionContext) -> Iterator[Any]:
        building = [by_key[key] for key in context.selected_asset_keys]
        # A table being built is read (by its checks) as its staged copy; others as published.
        # Run with only checks selected (the audit job), nothing is built.
        names = (
            upstream
            | {t.name: t.published for t in tables}
            | {t.name: staged[t.name].staged for t in building}
        )
        with context.resources.warehouse.connect() as conn:
            audited: dict[dg.AssetCheckKey, dg.AssetCheckResult] = {}
            if building:
                _drop_scratch(conn)  # left by a run that was killed
                try:
                    audited = _stage(conn, building, build(context, conn), names)
                finally:
                    _drop_scratch(conn)
            results = list(_audit(conn, context, tables, names, audited))
            yield from results
            if _errors(results):  # nothing will be published: leave no staged copy behind
                for table in building:
                    conn.execute(f"drop table if exists {names[table.name]}")
            _fail_on_errors(results, published_unchanged=bool(building))
            # Publish: the IO manager swaps the op's tables in together, in one transaction,
            # with the first output; so every output's metadata is read before the first yield.
            batch = tuple(staged[t.name] for t in building)
            outputs = [
                dg.Output(
                    replace(staged[table.name], batch=batch),
                    output_name=table.name,
                    metadata=_materialization_metadata(conn, table, names[table.name]),
                )
                for table in building
            ]
            # Yielded with the connection still open: the IO manager's connections, in this
            # process, share the open database instead of opening and checkpointing it again.
            yield from outputs

    return _asset


def _stage(
    conn: duckdb.DuckDBPyConnection,
    building: Sequence[Table],
    sources: Mapping[str, str | Scratch],
    names: Mapping[str, str],
) -> dict[dg.AssetCheckKey, dg.AssetCheckResult]:
    """Write each table's staged copy: its SELECT's result, or its Scratch table renamed.

    Returns the check results that came with the Scratch tables.
    """
    audited = {}
    for table in building:
        source, staged = sources[table.name], names[table.name]
        conn.execute(f"create schema if not exists {table.schema}")
        if isinstance(source, Scratch):
            conn.execute(f"drop table if exists {staged}")
            conn.execute(f"alter table {source.relation} rename to {staged.split('.')[-1]}")
            audited |= {dg.AssetCheckKey(r.asset_key, r.check_name): r for r in source.audited}
        else:
            conn.execute(f"create or replace table {staged} as {source.format(**names)}")
    return audited


def _drop_scratch(conn: duckdb.DuckDBPyConnection) -> None:
    """Drop what a build leaves: temp tables and views (DuckDB holds them in memory, or spills
    them to disk) and the warehouse's __scratch_* tables."""
    found = conn.execute(
        r"""
        select 'view', 'temp.main.' || view_name from duckdb_views()
        where temporary and not internal
        union all select 'table', 'temp.main.' || table_name from duckdb_tables() where temporary
        union all select 'table', schema_name || '.' || table_name from duckdb_tables()
        where not temporary and starts_with(table_name, '__scratch_')
        """
    ).fetchall()
    for kind, name in found:
        conn.execute(f"drop {kind} {name}")


def _audit(
    conn: duckdb.DuckDBPyConnection,
    context: dg.AssetExecutionContext,
    tables: Sequence[Table],
    names: Mapping[str, str],
    audited: Mapping[dg.AssetCheckKey, dg.AssetCheckResult],
) -> Iterator[dg.AssetCheckResult]:
    """Each selected check's result: run on the table, or as build already audited it."""
    selected = context.selected_asset_check_keys
    for table in tables:
        for check in table.all_checks:
            key = dg.AssetCheckKey(table.key, check.name)
            if key in audited:
                yield audited[key]
            elif key in selected:
                yield check.run(conn, table.key, {**names, "this": names[table.name]})


def _errors(results: Sequence[dg.AssetCheckResult]) -> list[dg.AssetCheckResult]:
    return [r for r in results if not r.passed and r.severity == ERROR]


def _fail_on_errors(results: Sequence[dg.AssetCheckResult], published_unchanged: bool) -> None:
    failed = _errors(results)
    if failed:
        lines = [
            f"- {r.asset_key.to_user_string()} / {r.check_name}: "
            f"{r.metadata['failing_rows'].value} failing row(s)\n{r.metadata['sample'].value}"
            for r in failed
        ]
        outcome = "; the published tables were left unchanged" if published_unchanged else ""
        raise dg.Failure(
            description=f"Checks failed with ERROR severity{outcome}:\n" + "\n".join(lines),
            allow_retries=False,
        )


def _materialization_metadata(
    conn: duckdb.DuckDBPyConnection, table: Table, relation: str
) -> dict[str, Any]:
    preview = conn.execute(f"select * from {relation} limit {PREVIEW_ROWS}")
    columns = [column[0] for column in preview.description]
    metadata: dict[str, Any] = {
        "preview": dg.MetadataValue.md(markdown_table(columns, preview.fetchall()))
    }
    if table.metadata is not None:
        metadata.update(table.metadata(conn, relation))
    return metadata
