"""Resources: the warehouse (and its IO manager), the export, the PII key and the calendar.

The warehouse is built by one of two engines, chosen by BIKE_ENGINE when the code location
loads: `duckdb` (the default: DuckDBWarehouse, one file) or `spark` (SparkWarehouse: folders of
Parquet files, built by a local Spark or a cluster through Spark Connect; lib/spark.py). Both
implement `Warehouse`, the interface the assets and the IO manager use, with the same SQL.

Every setting comes from a `BIKE_*` environment variable (`.env.example` lists them with their
defaults); when it is set, the UI shows the variable's name, never its value. Each setting is
validated when a run starts, before anything is read or written: a bad value fails the run
with a message naming the variable, the value and the expected form.
"""

import importlib.util
import logging
import math
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg
import duckdb
from pydantic import PrivateAttr

if TYPE_CHECKING:  # pandas is imported by DuckDB when a table is read as a DataFrame
    import pandas as pd

from bike_assets.lib import export, pii, warehouse
from bike_assets.lib.checks import (
    Check,
    audit,
    layers_disagree,
    markdown_table,
    passed_layer_checks,
    raise_on_errors,
)
from bike_assets.lib.quarantine import check_rejected_share, quarantine
from bike_assets.lib.reference import load_reference_tables
from bike_assets.lib.specs import ENGINES, engine_kind
from bike_assets.lib.warehouse import (
    READS_PUBLISHED,
    Candidate,
    Model,
    RunLock,
    WarehouseError,
)

# The documented development key: hashes made with it are stable but not secret.
DEVELOPMENT_PII_KEY = "local-bike-development-key-not-secret"
PREVIEW_ROWS = 10
AS_OF_CONFIG_KEY = "run config resources.calendar.config.as_of_date"


def from_env(variable: str, default: str) -> Any:
    """`dg.EnvVar(variable)` when the variable is set and not empty, else the default."""
    return dg.EnvVar(variable) if os.environ.get(variable) else default


class SettingError(dg.Failure):
    """A `BIKE_*` setting (or the run's as-of date) has a value the pipeline cannot use."""

    def __init__(self, variable: str, value: str, expected: str) -> None:
        super().__init__(
            description=f"{variable}={value!r}: expected {expected}.", allow_retries=False
        )


def parse_date(variable: str, value: str) -> date:
    """A day written YYYY-MM-DD, a real date of the years 1900-2199 (the contract's range).

    Raises SettingError naming the variable (or config key) and the value as written.
    """
    expected = "a date written YYYY-MM-DD (a real day of the years 1900 to 2199)"
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise SettingError(variable, value, expected)
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise SettingError(variable, value, expected) from None
    if not 1900 <= day.year <= 2199:
        raise SettingError(variable, value, expected)
    return day


def parse_timezone(variable: str, value: str) -> ZoneInfo:
    """An IANA timezone name such as UTC or America/New_York; SettingError otherwise."""
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingError(
            variable, value, "an IANA timezone name such as UTC or Europe/Paris"
        ) from None


class Warehouse(dg.ConfigurableResource):
    """Where a run builds its tables and publishes them: the interface the assets and the IO
    manager use, implemented by each engine (DuckDBWarehouse, SparkWarehouse).

    A run's assets build their tables in the run's candidate version (`candidate(run_id)`: its
    `create_table(table, select)` makes a SELECT's result a table and returns its rows, its
    `connection.execute(sql)` runs DuckDB SQL); `query` runs a check; `finish_step` publishes
    the version whole after the run's last step. Every SQL text is DuckDB's dialect.
    """

    lock_timeout_seconds: str = "30"  # BIKE_LOCK_TIMEOUT_SECONDS: wait for another run

    _finished_steps: set[str] = PrivateAttr(default_factory=set)
    _results: list[dg.AssetCheckResult] = PrivateAttr(default_factory=list)
    _started: float = PrivateAttr(default_factory=time.monotonic)

    @property
    def location(self) -> str:
        """The published warehouse, as the run's summary names it."""
        raise NotImplementedError

    def candidate(self, run_id: str) -> Any:
        """The run's candidate version, opened on first use (waiting for any other run)."""
        raise NotImplementedError

    def connection(self, context: dg.AssetExecutionContext) -> Any:
        """A connection to the run's candidate (`execute(sql)`), for an asset that builds."""
        return self.candidate(context.run.run_id).connection

    def query(self, sql: str, limit: int) -> tuple[list[str], list[tuple[Any, ...]], int]:
        """(columns, first rows, row count) of a query: on the run's candidate when the run
        builds tables, else on the published version (read-only)."""
        raise NotImplementedError

    def read_frame(self, table: str) -> "pd.DataFrame":
        """A table (schema.table) as a pandas DataFrame: the run's version when it built it,
        else the published one."""
        raise NotImplementedError

    def stage_export(
        self, context: dg.AssetExecutionContext, raw_dir: Path, max_share: float, pii_key: bytes
    ) -> dict[str, int]:
        """Read the export (raw_dir) into the run's working tables, validated and quarantined
        (at most `max_share` of a file's rows), with the lookups and the PII key's pads; each
        file's rows read ({'customers.csv': 3000, ...}).

        Raises export.RawExportError naming the file, the line, the column and the value.
        """
        raise NotImplementedError

    def _publish(self) -> list[str]:
        """Publish the run's candidate, if it built one: the summary's lines (tables and rows).

        Raises WarehouseError when the layers disagree or the version cannot be published.
        """
        raise NotImplementedError

    def _validate_lock_timeout(self) -> None:
        try:
            seconds = float(self.lock_timeout_seconds)
        except ValueError:
            seconds = math.nan
        if not (math.isfinite(seconds) and seconds >= 0):
            raise SettingError(
                "BIKE_LOCK_TIMEOUT_SECONDS", self.lock_timeout_seconds, "a number of seconds >= 0"
            )

    def audit_step(
        self,
        context: dg.AssetExecutionContext,
        checks: Mapping[dg.AssetKey, Sequence[Check]],
    ) -> Iterator[dg.AssetCheckResult]:
        """The end of every table asset's step: run the step's selected checks (on the run's
        version of a table it built, else on the published one), yield their results, fail the
        step when an ERROR check failed (nothing of the run is published then), else
        finish_step."""
        results = audit(context, self.query, checks)
        yield from results
        raise_on_errors(results)
        self.finish_step(context, results)

    def finish_step(
        self, context: dg.AssetExecutionContext, results: Sequence[dg.AssetCheckResult] = ()
    ) -> None:
        """Record that this step passed its checks (`results`); after the run's last step,
        publish the run's version (if it built one) and log the run's summary.

        The run's steps are its `step_keys_to_execute` (or, when it names none, every op of
        its job). Raises WarehouseError when the layers disagree or the version cannot be
        published: then nothing is published.
        """
        self._finished_steps.add(str(context.op_execution_context.op_handle))
        self._results.extend(results)
        for result in results:
            if not result.passed:  # WARN: ERROR checks failed the step before
                context.log.warning(
                    f"WARN check {result.asset_key.to_user_string()} / {result.check_name} "
                    f"failed: {result.metadata['failing_rows'].value} row(s)"
                )
        planned = context.run.step_keys_to_execute or [n.name for n in context.job_def.nodes]
        if not set(planned) <= self._finished_steps:
            return
        context.log.info(self._summary(self._publish()))

    def _summary(self, published: Sequence[str]) -> str:
        passed = sum(result.passed for result in self._results)
        warned = [r for r in self._results if not r.passed]
        lines = [
            f"Published {self.location}:" if published else f"Audited {self.location} (read-only):",
            *(f"  {line}" for line in published),
            f"  checks: {passed} passed, {len(warned)} failed (WARN)",
            *(
                f"    {r.asset_key.to_user_string()} / {r.check_name}: "
                f"{r.metadata['failing_rows'].value} row(s)"
                for r in warned
            ),
            f"  in {time.monotonic() - self._started:.1f} s",
        ]
        return "\n".join(lines)


class DuckDBWarehouse(Warehouse):
    """The DuckDB warehouse: the published file readers open, and the candidate a run builds.

    A run's assets build their tables in the run's candidate version (`Candidate`); when the
    run's last step has passed its checks, the candidate is published whole (lib/warehouse.py
    says how, and what a reader sees). Run with only checks (the audit job), checks read the
    published file, read-only.
    """

    path: str = "data/warehouse.duckdb"  # BIKE_DUCKDB_PATH
    memory_limit: str = "1GB"  # BIKE_DUCKDB_MEMORY_LIMIT: DuckDB's memory limit
    threads: str = "2"  # BIKE_DUCKDB_THREADS: DuckDB's threads
    lock_timeout_seconds: str = "30"  # BIKE_LOCK_TIMEOUT_SECONDS: wait for another run

    _candidate: Candidate | None = PrivateAttr(default=None)
    _lock: RunLock | None = PrivateAttr(default=None)
    _reader: duckdb.DuckDBPyConnection | None = PrivateAttr(default=None)

    # --- settings ---------------------------------------------------------------------------

    @property
    def published_path(self) -> Path:
        return Path(self.path)

    @property
    def location(self) -> str:
        return self.path

    @property
    def connection_config(self) -> dict[str, str]:
        """DuckDB's settings for every connection of a run."""
        return {"memory_limit": self.memory_limit, "threads": self.threads}

    def validate(self) -> None:
        """Raise SettingError for the first setting that cannot be used."""
        if not self.path or self.published_path.is_dir():
            raise SettingError("BIKE_DUCKDB_PATH", self.path, "the path of a DuckDB file")
        if not re.fullmatch(r"\d+(\.\d+)?\s*(B|[KMGT]i?B)", self.memory_limit, re.IGNORECASE):
            raise SettingError(
                "BIKE_DUCKDB_MEMORY_LIMIT", self.memory_limit, "a size such as 512MB, 1GB or 4GiB"
            )
        if not re.fullmatch(r"[1-9]\d*", self.threads):
            raise SettingError("BIKE_DUCKDB_THREADS", self.threads, "a whole number >= 1")
        self._validate_lock_timeout()

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.validate()
        run = context.run
        if run is not None and READS_PUBLISHED.items() <= run.tags.items():
            self._reading()  # fails once, before any step, when nothing is published yet

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """End of the run: an unpublished candidate is removed, the run's lock released."""
        if self._candidate is not None:
            self._candidate.discard()
        if self._lock is not None:
            self._lock.release()
        if self._reader is not None:
            self._reader.close()

    # --- building: the run's candidate version ----------------------------------------------

    def candidate(self, run_id: str) -> Candidate:
        """The run's candidate version, opened on first use (waiting for any other run)."""
        if self._candidate is None:
            self.published_path.parent.mkdir(parents=True, exist_ok=True)
            lock = RunLock(
                self.published_path.with_name(self.published_path.name + ".lock"),
                float(self.lock_timeout_seconds),
                f"run {run_id} (pid {os.getpid()})",
            )
            lock.acquire()
            self._lock = lock
            candidate = Candidate(self.published_path, self.connection_config)
            try:
                candidate.open()
            except (duckdb.Error, OSError) as error:
                raise WarehouseError(
                    f"Cannot write the warehouse's new version {candidate.path} (beside "
                    f"BIKE_DUCKDB_PATH={self.path}): {warehouse.describe(error)}"
                ) from error
            self._candidate = candidate
        return self._candidate

    def connection(self, context: dg.AssetExecutionContext) -> duckdb.DuckDBPyConnection:
        """A connection to the run's candidate, for an asset that builds tables."""
        return self.candidate(context.run.run_id).connection

    def stage_export(
        self, context: dg.AssetExecutionContext, raw_dir: Path, max_share: float, pii_key: bytes
    ) -> dict[str, int]:
        conn = self.connection(context)
        rows_read = {spec.name: export.read(conn, raw_dir, spec) for spec in export.EXPORT}
        context.log.info(f"Read {raw_dir}: {rows_read}")
        quarantine(conn, raw_dir, rows_read)
        check_rejected_share(conn, rows_read, max_share)
        load_reference_tables(conn)
        pii.set_key(conn, pii_key)
        return rows_read

    def query(self, sql: str, limit: int) -> tuple[list[str], list[tuple[Any, ...]], int]:
        """(columns, first rows, row count) of a query: on the run's candidate when the run
        builds tables, else on the published version (read-only)."""
        return warehouse.query_rows(self._reading(), sql, limit)

    def _reading(self) -> duckdb.DuckDBPyConnection:
        if self._candidate is not None:
            return self._candidate.connection
        if self._reader is None:
            self._reader = warehouse.connect_published(self.published_path, self.connection_config)
        return self._reader

    def _publish(self) -> list[str]:
        """Publish the run's candidate (if it built one): the summary's lines.

        Raises WarehouseError when the layers disagree or the file cannot be replaced: then
        nothing is published.
        """
        candidate, published = self._candidate, []
        if candidate is not None:
            inherited = candidate.inherited()
            disagree = layers_disagree(
                lambda sql, limit: warehouse.query_rows(candidate.connection, sql, limit),
                {*warehouse.tables_in(candidate.connection), *inherited},
                passed_layer_checks(self._results),
            )
            warehouse.refuse_unless_layers_agree(disagree)
            try:
                candidate.publish()
            except (duckdb.Error, OSError) as error:
                raise WarehouseError(
                    f"Nothing was published: replacing BIKE_DUCKDB_PATH={self.path} failed: "
                    f"{warehouse.describe(error)}"
                ) from error
            self._candidate = None
            self._lock.release()
            published = [
                f"{table} ({rows:,} rows)" for table, rows in sorted(candidate.built.items())
            ]
            if inherited:
                published.append(f"kept from the previous version: {', '.join(inherited)}")
        return published

    # --- reading -------------------------------------------------------------------------

    def read_frame(self, table: str) -> "pd.DataFrame":
        """A table (schema.table) as a pandas DataFrame: the run's version when it built it,
        else the published one."""
        return self._reading().execute(f"select * from {table}").fetchdf()


# A Spark Connect URL: sc://host[:port][/;param=value;...] (Spark's own form).
SPARK_CONNECT_URL = re.compile(r"sc://[A-Za-z0-9.\-]+(:\d{1,5})?(/(;[^;=\s]+=[^;\s]*)*)?")


class SparkWarehouse(Warehouse):
    """The Spark warehouse (BIKE_ENGINE=spark): each table a folder of Parquet files under
    BIKE_SPARK_WAREHOUSE (`<schema>.db/<table>/v=<version>/`), built by a local Spark or by a
    cluster through Spark Connect (BIKE_SPARK_REMOTE); a version is published whole by its
    manifest (lib/spark.py says how, and what a reader sees). The engine (pyspark, sqlglot) is
    imported only when a run uses it.
    """

    remote: str = ""  # BIKE_SPARK_REMOTE: a Spark Connect URL; empty for a local Spark
    warehouse: str = "data/spark-warehouse"  # BIKE_SPARK_WAREHOUSE: a folder, or a URI

    _engine: Any = PrivateAttr(default=None)  # lib.spark.SparkEngine

    @property
    def location(self) -> str:
        return self.warehouse

    def validate(self) -> None:
        """Raise SettingError for the first setting that cannot be used."""
        if self.remote and not SPARK_CONNECT_URL.fullmatch(self.remote):
            raise SettingError(
                "BIKE_SPARK_REMOTE",
                self.remote,
                "a Spark Connect URL such as sc://spark-host:15002 (or unset: a local Spark)",
            )
        uri = re.match(r"[A-Za-z][A-Za-z0-9+.\-]*:", self.warehouse)
        if not self.warehouse or "`" in self.warehouse or (uri and not self.remote):
            raise SettingError(
                "BIKE_SPARK_WAREHOUSE",
                self.warehouse,
                "a folder (a URI such as s3a://bucket/warehouse only with BIKE_SPARK_REMOTE)",
            )
        if not uri and Path(self.warehouse).exists() and not Path(self.warehouse).is_dir():
            raise SettingError("BIKE_SPARK_WAREHOUSE", self.warehouse, "a folder, not a file")
        self._validate_lock_timeout()

    def _spark(self) -> Any:
        if self._engine is None:
            # imported here: the DuckDB engine never imports pyspark
            from bike_assets.lib.spark import SparkEngine

            self._engine = SparkEngine(
                self.remote, self.warehouse, float(self.lock_timeout_seconds)
            )
        return self._engine

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.validate()
        run = context.run
        if run is not None and READS_PUBLISHED.items() <= run.tags.items():
            self._spark().reading()  # fails once, before any step, when nothing is published

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """End of the run: an unpublished candidate's folders removed, the lock released."""
        if self._engine is not None:
            self._engine.release()

    def candidate(self, run_id: str) -> Any:
        return self._spark().open(run_id)

    def query(self, sql: str, limit: int) -> tuple[list[str], list[tuple[Any, ...]], int]:
        return self._spark().reading().query_rows(sql, limit)

    def read_frame(self, table: str) -> "pd.DataFrame":
        return self._spark().reading().read_frame(table)

    def stage_export(
        self, context: dg.AssetExecutionContext, raw_dir: Path, max_share: float, pii_key: bytes
    ) -> dict[str, int]:
        return self._spark().stage_export(
            context.run.run_id, raw_dir, max_share, pii_key, context.log.info
        )

    def _publish(self) -> list[str]:
        return self._spark().publish(passed_layer_checks(self._results))


class WarehouseIOManager(dg.IOManager):
    """Persists each asset as the table `<schema>.<name>` of its key, in the run's candidate
    (on the `warehouse` resource's engine).

    An asset hands it a `Model` (the SELECT that builds the table); it writes the table and
    records its row count, name and a preview. Loading an asset gives a pandas DataFrame of
    the table (the run's version when this run built it, else the published one).
    """

    def __init__(self, store: Warehouse) -> None:
        self.store = store

    def handle_output(self, context: dg.OutputContext, obj: Model) -> None:
        table = ".".join(context.asset_key.path)
        candidate = self.store.candidate(context.run_id)
        rows = candidate.create_table(table, obj.sql)
        context.add_output_metadata(
            {
                "dagster/row_count": dg.MetadataValue.int(rows),
                "dagster/table_name": table,
                **self._preview(candidate.connection, table, rows, context.definition_metadata),
                **(obj.describe(candidate.connection, table) if obj.describe else {}),
            }
        )

    @staticmethod
    def _preview(conn: Any, table: str, rows: int, metadata: Mapping[str, Any]) -> dict[str, Any]:
        columns = metadata.get("preview_columns") or ["*"]
        cursor = conn.execute(f"select {', '.join(columns)} from {table} limit {PREVIEW_ROWS}")
        names = [column[0] for column in cursor.description]
        return {
            "preview": dg.MetadataValue.md(
                f"First {min(rows, PREVIEW_ROWS)} of {rows:,} rows; columns "
                f"{', '.join(names)}.\n\n" + markdown_table(names, cursor.fetchall())
            )
        }

    def load_input(self, context: dg.InputContext) -> "pd.DataFrame":
        return self.store.read_frame(".".join(context.upstream_output.asset_key.path))


@dg.io_manager(required_resource_keys={"warehouse"})
def warehouse_io_manager(context: dg.InitResourceContext) -> WarehouseIOManager:
    """The IO manager of every table asset: the `warehouse` resource's engine."""
    return WarehouseIOManager(context.resources.warehouse)


class RawExport(dg.ConfigurableResource):
    """The shops' BikeStores export: a folder of CSV files, and how many bad rows it may hold."""

    raw_dir: str = "data/raw"  # BIKE_RAW_DIR
    max_rejected_share: str = "0.01"  # BIKE_MAX_REJECTED_SHARE: a file's quarantined share

    @property
    def folder(self) -> Path:
        return Path(self.raw_dir)

    @property
    def max_share(self) -> float:
        return float(self.max_rejected_share)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if not self.folder.is_dir():
            raise SettingError(
                "BIKE_RAW_DIR", self.raw_dir, "a folder holding the export's CSV files"
            )
        try:
            share = float(self.max_rejected_share)
        except ValueError:
            share = math.nan
        if not (math.isfinite(share) and 0 <= share <= 1):
            raise SettingError(
                "BIKE_MAX_REJECTED_SHARE", self.max_rejected_share, "a share from 0 to 1"
            )


class PiiKey(dg.ConfigurableResource):
    """The secret key of the email and phone hashes (BIKE_PII_KEY; never shown in the UI)."""

    key: str = ""

    def key_bytes(self, log: logging.Logger | dg.DagsterLogManager) -> bytes:
        """The key; without one, the documented development key, with a warning."""
        if not self.key:
            log.warning(
                "BIKE_PII_KEY is not set: emails and phones are hashed with the documented "
                "development key, which is not secret (fine on sample data). Set BIKE_PII_KEY "
                "in production, and keep it: changing it changes every hash."
            )
            return DEVELOPMENT_PII_KEY.encode()
        return self.key.encode()


class BusinessCalendar(dg.ConfigurableResource):
    """The day a run describes (its as-of date) and the schedule's timezone.

    as_of_date: the run config `resources.calendar.config.as_of_date` (the schedule sets it to
    its tick's date), else BIKE_AS_OF_DATE, else today in BIKE_SCHEDULE_TIMEZONE
    (docs/tables.md, "marts.customers_enriched").
    """

    timezone: str = "UTC"  # BIKE_SCHEDULE_TIMEZONE
    as_of_date: str = ""  # BIKE_AS_OF_DATE or the run config, YYYY-MM-DD

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.as_of()

    def as_of(self) -> date:
        """The run's as-of date. Raises SettingError for a value that is not a real day."""
        zone = parse_timezone("BIKE_SCHEDULE_TIMEZONE", self.timezone)
        if self.as_of_date:
            from_variable = os.environ.get("BIKE_AS_OF_DATE") == self.as_of_date
            source = "BIKE_AS_OF_DATE" if from_variable else AS_OF_CONFIG_KEY
            return parse_date(source, self.as_of_date)
        return datetime.now(zone).date()


def engine_warehouse() -> Warehouse:
    """The `warehouse` resource of BIKE_ENGINE (read when the code location loads): DuckDB's
    (the default) or Spark's. Raises SettingError naming BIKE_ENGINE for another value, or
    for spark when pyspark or sqlglot is not installed (the `spark` extra)."""
    engine = engine_kind()
    if engine not in ENGINES:
        raise SettingError(
            "BIKE_ENGINE", os.environ.get("BIKE_ENGINE", ""), "duckdb (the default) or spark"
        )
    lock_timeout_seconds = from_env("BIKE_LOCK_TIMEOUT_SECONDS", "30")
    if engine == "duckdb":
        return DuckDBWarehouse(
            path=from_env("BIKE_DUCKDB_PATH", "data/warehouse.duckdb"),
            memory_limit=from_env("BIKE_DUCKDB_MEMORY_LIMIT", "1GB"),
            threads=from_env("BIKE_DUCKDB_THREADS", "2"),
            lock_timeout_seconds=lock_timeout_seconds,
        )
    missing = [name for name in ("pyspark", "sqlglot") if importlib.util.find_spec(name) is None]
    if missing:
        raise SettingError(
            "BIKE_ENGINE",
            "spark",
            f"duckdb, or spark with its packages installed ({', '.join(missing)} missing: "
            "pip install -e '.[spark]')",
        )
    return SparkWarehouse(
        remote=from_env("BIKE_SPARK_REMOTE", ""),
        warehouse=from_env("BIKE_SPARK_WAREHOUSE", "data/spark-warehouse"),
        lock_timeout_seconds=lock_timeout_seconds,
    )


@dg.definitions
def resources() -> dg.Definitions:
    """The resources, configured from the environment, and the run's executor: one process
    runs a run's steps one after another (they share the run's candidate version)."""
    return dg.Definitions(
        resources={
            "warehouse": engine_warehouse(),
            "io_manager": warehouse_io_manager,
            "raw_export": RawExport(
                raw_dir=from_env("BIKE_RAW_DIR", "data/raw"),
                max_rejected_share=from_env("BIKE_MAX_REJECTED_SHARE", "0.01"),
            ),
            "pii_key": PiiKey(key=from_env("BIKE_PII_KEY", "")),
            "calendar": BusinessCalendar(
                timezone=from_env("BIKE_SCHEDULE_TIMEZONE", "UTC"),
                as_of_date=from_env("BIKE_AS_OF_DATE", ""),
            ),
        },
        executor=dg.in_process_executor,
    )
