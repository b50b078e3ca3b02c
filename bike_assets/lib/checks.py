"""Asset checks as SQL files: each check is the query of the rows that break its rule
(`sql/checks/<file>.sql`); none means it passes. ERROR checks block publication; WARN checks
only report. The rule a check enforces is the macro its SQL calls: a business rule of
sql/macros/rules.sql, the same one the model calls, or a key check of sql/macros/keys.sql
(unique keys, references, layers agree: fast on large tables, each equal to the plain query it
shows)."""

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from bike_assets.lib.specs import Table
from bike_assets.lib.sql import render

ERROR = dg.AssetCheckSeverity.ERROR
WARN = dg.AssetCheckSeverity.WARN
SAMPLE_ROWS = 5

# Runs a query and returns (column names, first rows, total row count): the engine's part.
Query = Callable[[str, int], tuple[list[str], list[tuple[Any, ...]], int]]


@dataclass(frozen=True)
class Check:
    """A check of one table: `sql/checks/<file>.sql` rendered with `params` and `this`.

    `name` is the check's name in the UI; `description` says the rule in a sentence.
    """

    name: str
    file: str
    description: str
    params: Mapping[str, Any] = field(default_factory=dict)
    severity: dg.AssetCheckSeverity = ERROR

    def spec(self, asset_key: dg.AssetKey) -> dg.AssetCheckSpec:
        """The check's declaration on its asset (ERROR checks are blocking)."""
        return dg.AssetCheckSpec(
            self.name,
            asset=asset_key,
            description=f"{self.description} ({self.severity.value})",
            blocking=self.severity == ERROR,
        )

    def sql(self, this: str) -> str:
        """The query of the rows of table `this` that break the rule."""
        return render(f"checks/{self.file}", this=this, **self.params)

    def evaluate(self, query: Query, asset_key: dg.AssetKey, this: str) -> dg.AssetCheckResult:
        """Run the check on table `this`: passed when no row breaks the rule. The result
        carries the number of failing rows and a sample of them (markdown)."""
        columns, rows, count = query(self.sql(this), SAMPLE_ROWS)
        return dg.AssetCheckResult(
            asset_key=asset_key,
            check_name=self.name,
            passed=count == 0,
            severity=self.severity,
            description=self.description,
            metadata={
                "failing_rows": dg.MetadataValue.int(count),
                "sample": dg.MetadataValue.md(markdown_table(columns, rows) if rows else "none"),
            },
        )


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table of rows (check samples, previews); a null is an empty cell."""
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


# --- The checks that must hold (docs/tables.md, "Checks that must hold on every published table")


def columns_match_contract(table: Table) -> Check:
    """Contract: the table has exactly its declared columns (name, type)."""
    return Check(
        "columns_match_contract",
        "columns_match_contract",
        "Columns and types are exactly those of the table's contract",
        {
            "schema": table.layer,
            "table": table.name,
            "columns": [(name, kind) for name, kind, _ in table.columns],
        },
    )


def key_id(columns: Sequence[str]) -> str | None:
    """The column of a key that sql/macros/keys.sql groups by buckets of ids: its first named
    *_id (a whole number in every contract: order_id of (order_id, item_id), which has the
    most distinct values); None when it has none."""
    return next((column for column in columns if column.endswith("_id")), None)


def unique_not_null(*columns: str) -> Check:
    """Keys: the primary key (columns) is unique and not null."""
    return Check(
        f"{'_'.join(columns)}_is_unique_and_not_null",
        "unique_not_null",
        f"Primary key ({', '.join(columns)}) is unique and not null",
        {"columns": list(columns), "id": key_id(columns)},
    )


def relationships(column: str, parent: str) -> Check:
    """Keys: every value of `column` exists in model `parent` (which has the same column)."""
    return Check(
        f"{column}_exists_in_{parent}",
        "relationships",
        f"Every {column} exists in {parent}",
        {"column": column, "parent": parent},
    )


def accepted_values(column: str, values: Sequence[str], nullable: bool = False) -> Check:
    """The column holds only `values` (and null when `nullable`)."""
    return Check(
        f"{column}_is_allowed",
        "accepted_values",
        f"{column} is one of {', '.join(values)}" + (" (or null)" if nullable else ""),
        {"column": column, "values": list(values), "nullable": nullable},
    )


def not_negative(*columns: str) -> Check:
    """Money: no negative amount in `columns`."""
    return Check(
        "no_negative_amounts",
        "not_negative",
        f"No negative amount in {', '.join(columns)}",
        {"columns": list(columns)},
    )


def layers_agree(key: str, parent: str) -> Check:
    """Layers agree: the table has exactly the `key`s of model `parent`, each once."""
    return Check(
        f"same_{key}s_as_{parent}",
        "layers_agree",
        f"Exactly the {key}s of {parent}, each once",
        {"key": key, "parent": parent},
    )


def rule(name: str, description: str, severity: dg.AssetCheckSeverity = ERROR) -> Check:
    """A check specific to one table, whose SQL is `sql/checks/<name>.sql`."""
    return Check(name, name, description, severity=severity)


# Layers agree (docs/tables.md): checked on each table's asset, and on the whole new version
# before it is published (a run may rebuild only some tables).
LAYERS_AGREE: dict[str, Check] = {
    "intermediate.orders_enriched": layers_agree("order_id", "stg_orders"),
    "marts.customers_enriched": layers_agree("customer_id", "stg_customers"),
    "marts.customer_segment_history": Check(
        "current_rows_match_customers_enriched",
        "history_agrees_with_customers",
        "The current rows (valid_to null) are customers_enriched's customers with orders, in "
        "the same (customer_segment, ltv_segment) pair and as_of_date; their figures (at "
        "valid_from) are at most customers_enriched's total_orders and total_spent",
    ),
}


def audit(
    context: dg.AssetExecutionContext,
    query: Query,
    checks: Mapping[dg.AssetKey, Sequence[Check]],
) -> list[dg.AssetCheckResult]:
    """Run the checks of this step that the run selected, each on its table (the table of
    the asset key: `schema.name`): on the run's new version of a table it built, else on the
    published one."""
    selected = context.selected_asset_check_keys
    return [
        check.evaluate(query, key, ".".join(key.path))
        for key, key_checks in checks.items()
        for check in key_checks
        if dg.AssetCheckKey(key, check.name) in selected
    ]


def raise_on_errors(results: Sequence[dg.AssetCheckResult]) -> None:
    """Fail the step when an ERROR check failed, naming each check and its failing rows:
    nothing of the run is published then."""
    failed = [r for r in results if not r.passed and r.severity == ERROR]
    if failed:
        lines = [
            f"- {r.asset_key.to_user_string()} / {r.check_name}: "
            f"{r.metadata['failing_rows'].value} failing row(s)\n{r.metadata['sample'].value}"
            for r in failed
        ]
        raise dg.Failure(
            description="Checks failed with ERROR severity; nothing of this run is published:\n"
            + "\n".join(lines),
            allow_retries=False,
        )


def layers_disagree(
    query: Query, tables: Collection[str], passed: Collection[str] = ()
) -> list[str]:
    """The LAYERS_AGREE checks that fail on a version of the warehouse holding `tables`
    (schema.table), as '<table> / <check>: N failing row(s)' lines; empty when the layers
    agree. A table in `passed` is not checked again: its check passed in this run, after the
    tables it is compared with were final (they are built before it)."""
    failed = []
    for table, check in LAYERS_AGREE.items():
        if table in tables and table not in passed:
            _, _, count = query(check.sql(this=table), 0)
            if count:
                failed.append(f"{table} / {check.name}: {count} failing row(s)")
    return failed


def passed_layer_checks(results: Sequence[dg.AssetCheckResult]) -> set[str]:
    """The tables (schema.table) whose LAYERS_AGREE check is among the passed `results`."""
    return {
        table
        for result in results
        for table in [".".join(result.asset_key.path)]
        if result.passed and table in LAYERS_AGREE and LAYERS_AGREE[table].name == result.check_name
    }
