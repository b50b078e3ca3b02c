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
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def _lock_message(path: str, error: duckdb.IOException, waited: float) -> str:
    holder = _LOCK_HOLDER.search(str(error))
    if holder is None:
        who = "another process"
    else:
        command = _process_command(holder["pid"]) or holder["program"]
        who = f"process {holder['pid']} ({command})"
    return (
        f"The warehouse {path} is locked by {who}; waited {waited:.0f} s. DuckDB allows one "
        "writer per file: close that process's connection (for example quit the DuckDB shell, "
        "or open the file with read_only=True while no run is writing), then run again."
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

    @property
    def published(self) -> str:
        return f"{self.schema}.{self.table}"

    @property
    def staged(self) -> str:
        return f"{self.schema}.__staged_{self.table}"

    def publish(self, conn: duckdb.DuckDBPyConnection) -> None:
        """Replace the published table by the staged one in a single transaction."""
        conn.execute("begin transaction")
        try:
            conn.execute(f"drop table if exists {self.published}")
            conn.execute(f"alter table {self.staged} rename to {self.table}")
            conn.execute("commit")
        except BaseException:
            conn.execute("rollback")
            raise
