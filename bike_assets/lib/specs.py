"""How a table is declared: its key (schema, table), layer, owners, kinds and columns."""

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import dagster as dg

OWNERS = ["team:local-bike-data"]
CONTRACT = "docs/tables.md"
ENGINES = ("duckdb", "spark")  # BIKE_ENGINE's values (defs/resources.py binds the warehouse)


def engine_kind() -> str:
    """The engine that builds the tables, BIKE_ENGINE (default duckdb), read when the code
    location loads: shown in the UI among each table's kinds."""
    return (os.environ.get("BIKE_ENGINE") or "duckdb").strip().lower()


# The marts are rebuilt every morning by the daily schedule (06:00): older than 26 hours (a
# missed morning, with two hours' grace for a slow or retried run), the UI shows them stale.
DAILY = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=26))
FRESHNESS_BY_LAYER = {"marts": DAILY}


@dataclass(frozen=True)
class Table:
    """A published table `<layer>.<name>`: asset key [layer, name], in asset group `layer`.

    `columns` are (name, DuckDB type, description): the table's contract, shown in the UI and
    enforced by its columns_match_contract check. `preview` are the columns an analyst reads
    first, shown in each materialization's preview. `deps` are the keys of the tables its SQL
    reads. `freshness` is how old the table may get before the UI shows it stale (default: its
    layer's, FRESHNESS_BY_LAYER: the marts follow the daily schedule).
    """

    layer: str
    name: str
    description: str
    columns: Sequence[tuple[str, str, str]]
    preview: Sequence[str]
    deps: Sequence[dg.AssetKey] = field(default=())
    freshness: dg.FreshnessPolicy | None = None

    @property
    def key(self) -> dg.AssetKey:
        return dg.AssetKey([self.layer, self.name])

    @property
    def relation(self) -> str:
        """The table's name in the warehouse: schema.table."""
        return f"{self.layer}.{self.name}"

    @property
    def out(self) -> dg.AssetOut:
        """The asset's output: description, group, owners, kinds, column schema; persisted
        by the IO manager as the table `relation`."""
        return dg.AssetOut(
            key=self.key,
            description=f"{self.description}\n\nContract: {CONTRACT}, '{self.relation}'. "
            f"SQL: bike_assets/sql/{self.layer}/{self.name}.sql.",
            group_name=self.layer,
            owners=OWNERS,
            kinds={engine_kind(), "sql"},
            is_required=False,
            freshness_policy=(
                self.freshness if self.freshness is not None else FRESHNESS_BY_LAYER.get(self.layer)
            ),
            metadata={
                "dagster/column_schema": dg.TableSchema(
                    columns=[dg.TableColumn(c, t, description=d) for c, t, d in self.columns]
                ),
                "dagster/table_name": self.relation,
                "preview_columns": list(self.preview),
            },
        )
