"""How a table is declared: its key (schema, table), layer, owners, kinds and columns."""

from collections.abc import Sequence
from dataclasses import dataclass, field

import dagster as dg

OWNERS = ["team:local-bike-data"]
CONTRACT = "docs/tables.md"


@dataclass(frozen=True)
class Table:
    """A published table `<layer>.<name>`: asset key [layer, name], in asset group `layer`.

    `columns` are (name, DuckDB type, description): the table's contract, shown in the UI and
    enforced by its columns_match_contract check. `preview` are the columns an analyst reads
    first, shown in each materialization's preview. `deps` are the keys of the tables its SQL
    reads.
    """

    layer: str
    name: str
    description: str
    columns: Sequence[tuple[str, str, str]]
    preview: Sequence[str]
    deps: Sequence[dg.AssetKey] = field(default=())

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
            kinds={"duckdb", "sql"},
            is_required=False,
            metadata={
                "dagster/column_schema": dg.TableSchema(
                    columns=[dg.TableColumn(c, t, description=d) for c, t, d in self.columns]
                ),
                "dagster/table_name": self.relation,
                "preview_columns": list(self.preview),
            },
        )
