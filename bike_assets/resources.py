"""Dagster resources: the warehouse, the raw export, the PII key, the calendar, the IO manager."""

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb
import pandas as pd
from dagster._core.storage.db_io_manager import DbIOManager, DbTypeHandler, TableSlice
from dagster_duckdb.io_manager import DuckDbClient
from dagster_duckdb_pandas import DuckDBPandasIOManager
from dagster_duckdb_pandas.duckdb_pandas_type_handler import DuckDBPandasTypeHandler

from bike_assets import warehouse
from bike_assets.settings import DEVELOPMENT_PII_KEY, Settings
from bike_assets.warehouse import StagedTable


class Warehouse(dg.ConfigurableResource):
    """The DuckDB file every table lives in; assets build and audit tables through it."""

    database: str
    memory_limit: str = "1GB"
    threads: int = 2
    lock_timeout_seconds: float = 30.0

    @property
    def connection_config(self) -> dict[str, str]:
        # The IO manager opens the same file with the same config: DuckDB requires it in-process.
        # Tables are sets: no query needs DuckDB to keep rows in the order they came, which
        # costs time, except reading the export (raw.py asks for it there).
        return {
            "memory_limit": self.memory_limit,
            "threads": str(self.threads),
            "preserve_insertion_order": "false",
        }

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with warehouse.connect(
            self.database, self.connection_config, self.lock_timeout_seconds
        ) as conn:
            yield conn


class RawExport(dg.ConfigurableResource):
    """Where the shops' BikeStores export is read from, and how many bad rows it may carry."""

    raw_dir: str
    max_rejected_share: float = 0.01


class PiiKey(dg.ConfigurableResource):
    """The secret key of the email and phone hashes (BIKE_PII_KEY)."""

    key: str | None = None

    def key_bytes(self, log: logging.Logger | dg.DagsterLogManager) -> bytes:
        if not self.key:
            log.warning(
                "BIKE_PII_KEY is not set: hashing emails and phones with the documented "
                "development key, which is not secret. Set BIKE_PII_KEY in production."
            )
            return DEVELOPMENT_PII_KEY.encode()
        return self.key.encode()


class BusinessCalendar(dg.ConfigurableResource):
    """Which day a run describes when its config does not say (BIKE_AS_OF_DATE, else today)."""

    timezone: str = "UTC"
    as_of_date: str | None = None

    def as_of(self, configured: str | None) -> date:
        """The run's as-of date: its config, else BIKE_AS_OF_DATE, else today in the timezone."""
        chosen = configured or self.as_of_date
        if chosen:
            return date.fromisoformat(chosen)
        return datetime.now(ZoneInfo(self.timezone)).date()


class _AtomicDuckDbClient(DuckDbClient):
    """DuckDB client whose writes replace whole tables in one transaction (no delete first)."""

    @staticmethod
    def delete_table_slice(context: dg.OutputContext, table_slice: TableSlice, connection) -> None:
        """Nothing to delete: the type handlers swap the table in atomically."""

    @staticmethod
    @contextmanager
    def connect(context, _table_slice: TableSlice) -> Iterator[duckdb.DuckDBPyConnection]:
        config = context.resource_config
        with warehouse.connect(
            config["database"], config["connection_config"], config["lock_timeout_seconds"]
        ) as conn:
            yield conn


class _FrameHandler(DuckDBPandasTypeHandler):
    """Writes a pandas DataFrame as a new version of the table, in one transaction."""

    def handle_output(
        self, context: dg.OutputContext, table_slice: TableSlice, obj: pd.DataFrame, connection
    ) -> Mapping[str, Any]:
        connection.register("__frame", obj)
        connection.execute("begin transaction")
        try:
            connection.execute(
                f"create or replace table {table_slice.schema}.{table_slice.table} "
                "as select * from __frame"
            )
            connection.execute("commit")
        except BaseException:
            connection.execute("rollback")
            raise
        finally:
            connection.unregister("__frame")
        return {"dagster/row_count": dg.MetadataValue.int(len(obj))}


class _StagedTableHandler(DbTypeHandler[StagedTable]):
    """Publishes a table that an asset built and audited in the warehouse (write-audit-publish)."""

    def handle_output(
        self, context: dg.OutputContext, table_slice: TableSlice, obj: StagedTable, connection
    ) -> Mapping[str, Any]:
        obj.publish(connection)
        (rows,) = connection.execute(f"select count(*) from {obj.published}").fetchone()
        return {"dagster/row_count": dg.MetadataValue.int(rows)}

    def load_input(self, context: dg.InputContext, table_slice: TableSlice, connection):
        raise NotImplementedError("Staged tables are read from the warehouse with SQL.")

    @property
    def supported_types(self) -> Sequence[type]:
        return [StagedTable]


class WarehouseIOManager(DuckDBPandasIOManager):
    """The DuckDB pandas IO manager, made atomic: a table is replaced in one transaction.

    An asset may return a pandas DataFrame (small tables, tests) or a StagedTable that it
    built and audited inside the warehouse (large tables: no data leaves DuckDB). Reading an
    asset back gives a DataFrame.
    """

    lock_timeout_seconds: float = 30.0

    @staticmethod
    def type_handlers() -> Sequence[DbTypeHandler]:
        return [_FrameHandler(), _StagedTableHandler()]

    def create_io_manager(self, context) -> DbIOManager:
        return DbIOManager(
            db_client=_AtomicDuckDbClient(),
            database=self.database,
            schema=self.schema_,
            type_handlers=self.type_handlers(),
            default_load_type=pd.DataFrame,
            io_manager_name="WarehouseIOManager",
        )


def build_resources(settings: Settings) -> dict[str, Any]:
    """Every resource the definitions need, configured from the environment's settings."""
    store = Warehouse(
        database=settings.duckdb_path,
        memory_limit=settings.duckdb_memory_limit,
        threads=settings.duckdb_threads,
        lock_timeout_seconds=settings.lock_timeout_seconds,
    )
    return {
        "warehouse": store,
        "io_manager": WarehouseIOManager(
            database=store.database,
            connection_config=store.connection_config,
            lock_timeout_seconds=store.lock_timeout_seconds,
        ),
        "raw_export": RawExport(
            raw_dir=settings.raw_dir, max_rejected_share=settings.max_rejected_share
        ),
        "pii_key": PiiKey(key=settings.pii_key),
        "calendar": BusinessCalendar(
            timezone=settings.schedule_timezone, as_of_date=settings.as_of_date
        ),
    }
