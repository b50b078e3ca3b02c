"""Nothing lost: a run killed, crashed or locked out leaves the published tables as they were."""

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from bike_assets.checks import Check
from bike_assets.generate import generate_export
from bike_assets.settings import Settings
from bike_assets.warehouse import StagedTable
from bike_assets_tests.conftest import (
    TINY_EXPORT,
    Pipeline,
    assert_tables_equal,
    published_tables,
    staged_tables,
    write_export,
)

ROOT = Path(__file__).resolve().parents[1]
AS_OF = "2025-12-31"
BIG_EXPORT_CUSTOMERS = 100_000  # staging's writes then take ~0.5 s, orders_enriched's ~0.4 s

# daily_refresh in a process of its own, as `dagster job execute` would run it.
JOB = """
import sys
from bike_assets.definitions import build_definitions
from bike_assets.settings import Settings
from bike_assets.warehouse import StagedTable

settings = Settings(duckdb_path=sys.argv[1], raw_dir=sys.argv[2], pii_key="test-key")
config = {"ops": {"customers_enriched": {"config": {"as_of_date": sys.argv[3]}}}}
job = build_definitions(settings).resolve_job_def("daily_refresh")
sys.exit(0 if job.execute_in_process(run_config=config, raise_on_error=False).success else 1)
"""
# A process holding the warehouse open, as an analyst's DuckDB shell does.
HOLDER = """
import sys, time, duckdb
conn = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "read_only")
print("holding", flush=True)
time.sleep(float(sys.argv[3]))
"""


def size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


# --- SIGKILL in the middle of a write -----------------------------------------------------------

Trigger = Callable[[list[str]], bool]  # given the run's log so far: kill now?


def kill_run_when(pipeline: Pipeline, raw_dir: Path, trigger: Trigger) -> list[str]:
    """Run daily_refresh in a subprocess and SIGKILL it as soon as trigger says; its log."""
    process = subprocess.Popen(
        [sys.executable, "-c", JOB, pipeline.settings.duckdb_path, str(raw_dir), AS_OF],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log: list[str] = []
    reader = threading.Thread(target=lambda: log.extend(iter(process.stdout.readline, "")))
    reader.start()
    try:
        while process.poll() is None and not trigger(log):
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL, "the run ended before the kill"
    finally:
        process.kill()
        reader.join()
    return log


def file_grows(path: Path) -> Trigger:
    start = size(path)
    return lambda log: size(path) > start


def logged(text: str) -> Trigger:
    return lambda log: any(text in line for line in log)


def step_started(step: str, then_wait: float) -> Trigger:
    started: list[float] = []

    def trigger(log: list[str]) -> bool:
        if not started and any(f'Started execution of step "{step}"' in line for line in log):
            started.append(time.monotonic())
        return bool(started) and time.monotonic() - started[0] >= then_wait

    return trigger


def test_sigkill_during_a_write_leaves_the_last_good_tables(tmp_path: Path) -> None:
    # The last good run: TINY_EXPORT and an order line of an unknown order (quarantined), so
    # that every table, rejected_rows included, differs from what the big export gives.
    old_export = {
        **TINY_EXPORT,
        "order_items.csv": [*TINY_EXPORT["order_items.csv"], "9,1,1,1,1.00,0"],
    }
    pipeline = Pipeline(
        Settings(
            duckdb_path=str(tmp_path / "warehouse.duckdb"),
            raw_dir=str(write_export(tmp_path / "old", old_export)),
            pii_key="test-key",
            max_rejected_share=0.5,
        )
    )
    assert pipeline.run(as_of=AS_OF).success
    last_good = published_tables(pipeline)
    new_dir = tmp_path / "new"
    rows = generate_export(new_dir, BIG_EXPORT_CUSTOMERS, seed=7)
    database = Path(pipeline.settings.duckdb_path)

    # 1. The first file's rows are being written to the warehouse: nothing is committed yet.
    kill_run_when(pipeline, new_dir, file_grows(database))
    assert_tables_equal(published_tables(pipeline), last_good)

    # 2. The export is read into scratch tables (committed), and staging goes on.
    kill_run_when(pipeline, new_dir, logged(f"Read {new_dir}"))
    assert_tables_equal(published_tables(pipeline), last_good)
    assert staged_tables(pipeline)  # what the killed run committed, never published

    # 3. staging has been published, orders_enriched is being written (~0.4 s from its start).
    kill_run_when(pipeline, new_dir, step_started("orders_enriched", then_wait=0.1))
    after_third_kill = published_tables(pipeline)

    # The next run succeeds, replaces the staged copies left behind and publishes everything.
    result = pipeline.with_raw_dir(new_dir).run(as_of=AS_OF)
    assert result.success
    assert staged_tables(pipeline) == []
    new = published_tables(pipeline)
    files = ("customers", "stores", "orders", "order_items")
    assert [len(new[f"staging.stg_{f}"]) for f in files] == [rows[f"{f}.csv"] for f in files]
    assert new["staging.rejected_rows"].empty
    # Each asset publishes its tables once audited: at the third kill, staging was the new
    # run's, and the tables of the asset being written were the last good run's.
    for name, frame in after_third_kill.items():
        expected = new[name] if name.startswith("staging.") else last_good[name]
        pd.testing.assert_frame_equal(frame, expected, obj=name)


# --- A lock held by another process -------------------------------------------------------------


@pytest.fixture
def tiny(tmp_path: Path) -> Pipeline:
    """A warehouse after a good run on TINY_EXPORT; the next run reads a fourth customer."""
    pipeline = Pipeline(
        Settings(
            duckdb_path=str(tmp_path / "warehouse.duckdb"),
            raw_dir=str(write_export(tmp_path / "raw", TINY_EXPORT)),
            pii_key="test-key",
        )
    )
    assert pipeline.run().success
    customers = [
        *TINY_EXPORT["customers.csv"],
        "4,Ann,Lee,NULL,ann@aol.com,2 Elm St,Austin,TX,78701",
    ]
    return pipeline.with_raw_dir(
        write_export(tmp_path / "new", {**TINY_EXPORT, "customers.csv": customers})
    )


def hold_lock(database: str, mode: str, seconds: float) -> subprocess.Popen:
    """Start a process that opens the warehouse (read_write or read_only) for `seconds`."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, database, mode, str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline() == "holding\n"
    return holder


def step_error(result: dg.ExecuteInProcessResult) -> str:
    """The run's one step failure: the error's message, then its causes' (Dagster wraps it)."""
    [failed] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    error, messages = failed.event_specific_data.error, []
    while error is not None:
        messages.append(error.message.strip())
        error = error.cause
    return "\n".join(messages)


@pytest.mark.parametrize("mode", ["read_write", "read_only"])
def test_a_locked_warehouse_fails_the_run_naming_the_holder(tiny: Pipeline, mode: str) -> None:
    last_good = published_tables(tiny)
    locked = Pipeline(replace(tiny.settings, lock_timeout_seconds=2))
    holder = hold_lock(tiny.settings.duckdb_path, mode, seconds=60)
    try:
        started = time.monotonic()
        result = locked.run()
        waited = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert not result.success
    assert 2 <= waited < 6  # BIKE_LOCK_TIMEOUT_SECONDS=2, plus the run's own work
    message = step_error(result)
    # The holder's command line, as /proc shows it (the interpreter's path may differ).
    assert (
        f"bike_assets.warehouse.WarehouseLockedError: The warehouse {tiny.settings.duckdb_path} "
        f"is locked by process {holder.pid} (" in message
    )
    assert " -c import sys, time, duckdb conn = duckdb.connect(sys.argv[1]," in message
    assert "waited 2 s (BIKE_LOCK_TIMEOUT_SECONDS)" in message
    assert "close that process's connection (quit the DuckDB shell or the notebook)" in message
    assert_tables_equal(published_tables(tiny), last_good)
    # The lock released, the next run succeeds.
    assert locked.run().success
    assert len(published_tables(tiny)["staging.stg_customers"]) == 4


def test_a_lock_released_while_waiting_lets_the_run_through(tiny: Pipeline) -> None:
    holder = hold_lock(tiny.settings.duckdb_path, "read_write", seconds=1)
    try:
        assert holder.poll() is None  # still holding when the run starts
        result = Pipeline(replace(tiny.settings, lock_timeout_seconds=10)).run()
    finally:
        holder.wait()
    assert result.success
    assert len(published_tables(tiny)["staging.stg_customers"]) == 4


# --- An exception after the staged copies are written -------------------------------------------


def test_an_exception_mid_run_leaves_the_tables_and_the_next_run_succeeds(
    tiny: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    last_good = published_tables(tiny)
    run_check = Check.run

    def crash_on_rejected_rows(check: Check, *args: object) -> dg.AssetCheckResult:
        if check.name == "no_rejected_rows":  # staging's last check, its copies all written
            raise OSError("No space left on device")
        return run_check(check, *args)

    with monkeypatch.context() as patch:
        patch.setattr(Check, "run", crash_on_rejected_rows)
        result = tiny.run()
    assert "OSError: No space left on device" in step_error(result)
    assert_tables_equal(published_tables(tiny), last_good)
    assert staged_tables(tiny) == [
        "staging.__staged_rejected_rows",
        "staging.__staged_stg_customers",
        "staging.__staged_stg_order_items",
        "staging.__staged_stg_orders",
        "staging.__staged_stg_stores",
    ]
    # The next run replaces the copies left behind and publishes them.
    assert tiny.run().success
    assert staged_tables(tiny) == []
    assert len(published_tables(tiny)["staging.stg_customers"]) == 4


# --- Publishing the tables of one build together -----------------------------------------------


def test_a_batch_of_staged_tables_is_published_in_one_transaction() -> None:
    conn = duckdb.connect()
    conn.execute(
        "create schema s; create table s.a as select 'old' v; create table s.b as select 'old' v;"
        "create table s.__staged_a as select 'new' v; create table s.__staged_b as select 'new' v"
    )
    a, b = StagedTable("s", "a"), StagedTable("s", "b")
    batch = (a, b)
    replace(a, batch=batch).publish(conn)  # the first output of the build publishes both
    assert conn.sql("select (from s.a), (from s.b)").fetchall() == [("new", "new")]
    replace(b, batch=batch).publish(conn)  # the second has nothing left to do
    assert conn.sql("select (from s.a), (from s.b)").fetchall() == [("new", "new")]
    assert conn.sql(
        "select count(*) from duckdb_tables() where table_name like '__staged%'"
    ).fetchall() == [(0,)]


def test_a_batch_that_fails_half_way_publishes_nothing() -> None:
    conn = duckdb.connect()
    conn.execute(
        "create schema s; create table s.a as select 'old' v; create view s.b as select 'old' v;"
        "create table s.__staged_a as select 'new' v; create table s.__staged_b as select 'new' v"
    )
    a, b = StagedTable("s", "a"), StagedTable("s", "b")
    with pytest.raises(duckdb.CatalogException):  # s.b is a view: `drop table` refuses it
        replace(a, batch=(a, b)).publish(conn)
    assert conn.sql("select (from s.a), (from s.b)").fetchall() == [("old", "old")]
    assert conn.sql("select count(*) from s.__staged_a").fetchall() == [(1,)]
