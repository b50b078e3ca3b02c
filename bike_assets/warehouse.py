"""The DuckDB warehouse file: opening it (waiting a bounded time for its lock) and reading it."""

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")


class WarehouseLockedError(RuntimeError):
    """Another process holds the DuckDB file's lock for longer than we are willing to wait."""


def _process_command(pid: str) -> str:
    """The command line of a local process (Linux /proc), shortened; empty when unknown."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    command = " ".join(raw.replace(b"\0", b" ").decode(errors="replace").split())
    return command if len(command) <= 200 else command[:197] + "..."


def _lock_message(path: str, error: duckdb.IOException, waited: float) -> str:
    holder = _LOCK_HOLDER.search(str(error))
    if holder is None:
        who = "another process"
    else:
        command = _process_command(holder["pid"]) or holder["program"]
        who = f"process {holder['pid']} ({command})"
    return (
        f"The warehouse {path} is locked by {who}; waited {waited:.0f} s "
        "(BIKE_LOCK_TIMEOUT_SECONDS). A run needs the file to itself, and any open connection "
        "blocks it, read-only ones too: close that process's connection (quit the DuckDB shell "
        "or the notebook), then run again."
    )


@contextmanager
def connect(
    path: str, config: dict[str, str], lock_timeout_seconds: float
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse read-write, retrying while another process holds its lock."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    delay = 0.1
    while True:
        try:
            conn = duckdb.connect(path, config=config)
            break
        except duckdb.IOException as error:
            waited = time.monotonic() - started
            if "lock" not in str(error).lower():
                raise
            if waited >= lock_timeout_seconds:
                raise WarehouseLockedError(_lock_message(path, error, waited)) from error
            time.sleep(min(delay, max(lock_timeout_seconds - waited, 0.01)))
            delay = min(delay * 2, 2.0)
    try:
        yield conn
    finally:
        conn.close()


def table_exists(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    """Whether schema.table exists in the warehouse."""
    found = conn.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchone()
    return bool(found and found[0])


@dataclass(frozen=True)
class StagedTable:
    """A new version of schema.table, built and audited in the warehouse, not yet published."""

    schema: str
    table: str
    # The staged tables built together with this one (it included), published all at once by
    # whichever is published first; empty: this table alone.
    batch: tuple["StagedTable", ...] = ()

    @property
    def published(self) -> str:
        return f"{self.schema}.{self.table}"

    @property
    def staged(self) -> str:
        return f"{self.schema}.__staged_{self.table}"

    def publish(self, conn: duckdb.DuckDBPyConnection) -> None:
        """Replace the published table(s) by the staged one(s) in a single transaction.

        With a batch, every table of the batch that still has a staged copy is swapped in, so
        the batch's first publish publishes them all and the others have nothing left to do.
        """
        conn.execute("begin transaction")
        try:
            for table in self.batch or (self,):
                if self.batch and not table_exists(conn, table.schema, f"__staged_{table.table}"):
                    continue
                conn.execute(f"drop table if exists {table.published}")
                conn.execute(f"alter table {table.staged} rename to {table.table}")
            conn.execute("commit")
        except BaseException:
            conn.execute("rollback")
            raise
