"""The DuckDB warehouse and its publication (docs/tables.md, "Publication: one consistent version").

Readers open the published file, `BIKE_DUCKDB_PATH`. A run never writes it: it builds a
*candidate* version in a file of its own beside it (`<path>.candidate`), which starts as the
published version (each published table a view over it, the published file attached read-only),
and replaces the tables it rebuilds. When every step of the run has passed its checks, the
candidate is published whole: the tables the run did not rebuild are copied in, the layers are
checked against each other, and the candidate file atomically replaces the published one
(`os.replace`). A reader's open connection keeps reading the version it opened; the next
connection opens the new one. A run that fails or is killed at any moment leaves the published
file as it was; its candidate is removed by the run itself, or by the next one.

One run at a time: a run holds `<path>.lock` (an advisory lock the system releases when the
process ends, even killed) from its first write to its end; another run waits for it up to
`BIKE_LOCK_TIMEOUT_SECONDS`, then fails saying which process holds it.
"""

import fcntl
import os
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from bike_assets.lib.sql import WORK_SCHEMA

# The tag of a job that only reads the published version (the audit job): its run fails at
# once, with one message, when nothing has been published yet.
READS_PUBLISHED = {"bike/reads": "published"}


class WarehouseError(dg.Failure):
    """The warehouse file (BIKE_DUCKDB_PATH) cannot be read, written or published."""

    def __init__(self, description: str) -> None:
        super().__init__(description=description, allow_retries=False)


def describe(error: BaseException) -> str:
    """The first line of an error's message (DuckDB's carry a stack after it)."""
    lines = str(error).splitlines()
    return lines[0] if lines else type(error).__name__


@dataclass(frozen=True)
class Model:
    """What an asset hands the IO manager: the SELECT that builds its table (DuckDB SQL, as
    rendered from its model file), and optionally how to describe the table once built
    (more metadata, e.g. charts: a function of the connection and the table's name)."""

    sql: str
    describe: Callable[[duckdb.DuckDBPyConnection, str], Mapping[str, Any]] | None = None


class RunLock:
    """The advisory lock `<path>.lock` that keeps two runs from writing at once."""

    def __init__(self, path: Path, timeout_seconds: float, holder: str) -> None:
        self.path = path
        self.timeout_seconds = timeout_seconds
        self.holder = holder
        self._file: Any = None

    def acquire(self) -> None:
        """Take the lock, waiting up to timeout_seconds for the run that holds it.

        Raises WarehouseError naming the holder (pid and run) when the wait runs out.
        """
        handle = self.path.open("a+")
        started, delay = time.monotonic(), 0.05
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - started
                if waited >= self.timeout_seconds:
                    handle.seek(0)
                    who = handle.read().strip() or "another process"
                    handle.close()
                    raise WarehouseError(
                        f"Another run is writing the warehouse {self.lock_target}: {who}. "
                        f"Waited {waited:.0f} s (BIKE_LOCK_TIMEOUT_SECONDS="
                        f"{self.timeout_seconds:g}); runs never write at once. Start this run "
                        "again when that one has finished."
                    ) from None
                time.sleep(min(delay, self.timeout_seconds - waited + 0.01))
                delay = min(delay * 2, 1.0)
        handle.seek(0)
        handle.truncate()
        handle.write(self.holder)
        handle.flush()
        self._file = handle

    @property
    def lock_target(self) -> str:
        return str(self.path.with_suffix(""))

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing releases the lock
            self._file = None


@dataclass
class Candidate:
    """The version of the warehouse a run builds, in `<published>.candidate`."""

    published: Path
    config: Mapping[str, str]
    connection: duckdb.DuckDBPyConnection = field(init=False)
    built: dict[str, int] = field(default_factory=dict)  # schema.table rebuilt -> its rows

    @property
    def path(self) -> Path:
        return self.published.with_name(self.published.name + ".candidate")

    def open(self) -> None:
        """Start from the published version: its tables as views over it (attached read-only)."""
        self.discard()  # left by a run that was killed
        self.connection = duckdb.connect(str(self.path), config=dict(self.config))
        self.connection.execute(f"create schema if not exists {WORK_SCHEMA}")
        if not self.published.exists():
            return
        self.connection.execute(f"attach '{self.published}' as published (read_only)")
        for schema, table in self.connection.execute(
            "select schema_name, table_name from duckdb_tables() "
            "where database_name = 'published' and not internal"
        ).fetchall():
            self.connection.execute(f"create schema if not exists {schema}")
            self.connection.execute(
                f"create view {schema}.{table} as select * from published.{schema}.{table}"
            )

    def create_table(self, table: str, select: str) -> int:
        """Make `select`'s result the candidate's `table` (schema.table); returns its rows."""
        schema = table.split(".")[0]
        conn = self.connection
        conn.execute(f"create schema if not exists {schema}")
        conn.execute(f"drop view if exists {table}")
        conn.execute(f"create or replace table {table} as {select}")
        (rows,) = conn.execute(f"select count(*) from {table}").fetchone()
        self.built[table] = rows
        return rows

    def inherited(self) -> list[str]:
        """The published tables this run did not rebuild (views over the published file)."""
        return [
            f"{schema}.{name}"
            for schema, name in self.connection.execute(
                "select schema_name, view_name from duckdb_views() "
                "where database_name = current_database() and not internal and not temporary"
            ).fetchall()
        ]

    def publish(self) -> None:
        """Replace the published file by the candidate, atomically; the candidate is closed.

        The tables the run did not rebuild are copied in first, and the working tables dropped.
        """
        conn = self.connection
        for table in self.inherited():
            conn.execute(f"drop view {table}")
            conn.execute(f"create table {table} as select * from published.{table}")
        conn.execute(f"drop schema if exists {WORK_SCHEMA} cascade")
        with suppress(duckdb.BinderException, duckdb.CatalogException):
            conn.execute("detach published")
        conn.execute("checkpoint")
        conn.close()
        with open(self.path, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(self.path, self.published)
        directory = os.open(self.published.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def discard(self) -> None:
        """Close and remove the candidate (and its write-ahead log)."""
        with suppress(AttributeError, duckdb.Error):
            self.connection.close()
        for path in (self.path, self.path.with_name(self.path.name + ".wal")):
            with suppress(FileNotFoundError):
                path.unlink()


def query_rows(
    conn: duckdb.DuckDBPyConnection, sql: str, limit: int
) -> tuple[list[str], list[tuple[Any, ...]], int]:
    """(column names, first `limit` rows, row count) of a query, computed once."""
    conn.execute(f"create or replace temp table __result as {sql}")
    (count,) = conn.execute("select count(*) from __result").fetchone()
    cursor = conn.execute(f"select * from __result limit {limit}")
    columns = [column[0] for column in cursor.description]
    rows = cursor.fetchall()
    conn.execute("drop table __result")
    return columns, rows, count


def connect_published(path: Path, config: Mapping[str, str]) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the published version, as a reader opens it.

    Raises WarehouseError when nothing has been published yet at `path`, or it cannot be read.
    """
    if not path.exists():
        raise WarehouseError(
            f"No table has been published yet: {path} (BIKE_DUCKDB_PATH) does not exist. "
            "Run the daily_refresh job first."
        )
    try:
        return duckdb.connect(str(path), read_only=True, config=dict(config))
    except duckdb.Error as error:
        raise WarehouseError(f"Cannot read BIKE_DUCKDB_PATH={path}: {describe(error)}") from error


def refuse_unless_layers_agree(disagree: Sequence[str]) -> None:
    """Raise WarehouseError naming the layers-agree checks that failed on a new version (lines
    of lib/checks.layers_disagree): then nothing is published."""
    if disagree:
        raise WarehouseError(
            "Nothing was published: the layers of the new version disagree "
            "(docs/tables.md, 'Layers agree'):\n" + "\n".join(disagree)
        )


def tables_in(conn: duckdb.DuckDBPyConnection) -> Sequence[str]:
    """Every published table (schema.table) of a connection's database, sorted."""
    return [
        f"{schema}.{name}"
        for schema, name in conn.execute(
            "select schema_name, table_name from duckdb_tables() "
            "where database_name = current_database() and not internal order by 1, 2"
        ).fetchall()
    ]
