"""Publication: a run publishes one consistent version, or nothing (docs/tables.md,
"Publication: one consistent version" and "Layers agree").

These tests run the README's main command as a user does (a process of its own), kill it,
race two of them, and hold the warehouse open as a reader while it runs.
"""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from bike_assets.definitions import defs
from bike_assets.tools.generate import generate_export
from bike_assets_tests.conftest import (
    PUBLISHED_TABLES,
    TINY_EXPORT,
    Pipeline,
    assert_tables_equal,
    environment,
    published_tables,
    write_export,
)

REPO = Path(__file__).resolve().parents[1]
DAGSTER = str(Path(sys.executable).parent / "dagster")
# The README's main command (after set-up): materialize everything.
MAIN_COMMAND = [DAGSTER, "job", "execute", "-m", "bike_assets.definitions", "-j", "daily_refresh"]
# A fourth customer, for an export that differs from TINY_EXPORT.
ANN = "4,Ann,Lee,NULL,a@b.c,1 St,Austin,TX,1"
STEPS = [
    "staging",
    "orders_enriched",
    "customers_enriched",
    "region_segment_summary",
    "customer_segment_history",
]


@pytest.fixture(scope="module")
def export_100k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated export of 100,000 customers (about 0.3M orders, 0.9M lines)."""
    folder = tmp_path_factory.mktemp("export_100k")
    generate_export(folder, customers=100_000, seed=7)
    return folder


def _environment(pipeline: Pipeline, dagster_home: Path, **extra: str) -> dict[str, str]:
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", dagster_home / "dagster.yaml")
    return {
        **os.environ,
        **pipeline.environment,
        "BIKE_AS_OF_DATE": "2024-12-31",
        "DAGSTER_HOME": str(dagster_home),
        **extra,
    }


def _start(pipeline: Pipeline, dagster_home: Path, **extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        MAIN_COMMAND,
        cwd=REPO,
        env=_environment(pipeline, dagster_home, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _kill_at_step(process: subprocess.Popen, step: str) -> str:
    """Read the run's output until `step` starts, then SIGKILL the whole process group."""
    marker = f'Started execution of step "{step}"'
    seen = []
    for line in process.stdout:
        seen.append(line)
        if marker in line:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return "".join(seen)
    process.wait()
    raise AssertionError(f"step {step} never started:\n{''.join(seen[-30:])}")


def test_a_run_killed_at_any_step_leaves_the_published_version_as_it_was(
    tiny_pipeline: Pipeline, export_100k: Path, tmp_path: Path
) -> None:
    assert tiny_pipeline.run().success
    before = published_tables(tiny_pipeline)
    assert sorted(before) == PUBLISHED_TABLES
    big = tiny_pipeline.with_raw_dir(export_100k)
    for step in STEPS:
        process = _start(big, tmp_path / "home", BIKE_LOG_LEVEL="DEBUG")
        _kill_at_step(process, step)
        assert process.returncode == -signal.SIGKILL
        assert_tables_equal(published_tables(tiny_pipeline), before)
    # The next run succeeds, and publishes the 100k export whole.
    finished = subprocess.run(
        MAIN_COMMAND, cwd=REPO, env=_environment(big, tmp_path / "home"), capture_output=True
    )
    assert finished.returncode == 0, finished.stdout.decode()[-3000:]
    after = published_tables(tiny_pipeline)
    assert len(after["staging.stg_customers"]) == 100_000
    assert len(after["marts.customers_enriched"]) == 100_000
    assert not Path(f"{tiny_pipeline.warehouse}.candidate").exists()


def test_a_reader_holding_the_warehouse_open_never_blocks_a_run(
    tiny_pipeline: Pipeline, tmp_path: Path
) -> None:
    assert tiny_pipeline.run().success
    reader = duckdb.connect(str(tiny_pipeline.warehouse), read_only=True)
    (customers_before,) = reader.execute("select count(*) from staging.stg_customers").fetchone()
    assert customers_before == 3

    bigger = dict(TINY_EXPORT)
    bigger["customers.csv"] = [
        *TINY_EXPORT["customers.csv"],
        "4,Ann,Lee,NULL,a@b.c,1 St,Austin,TX,1",
    ]
    result = tiny_pipeline.with_raw_dir(write_export(tmp_path / "bigger", bigger)).run()

    assert result.success
    # The reader keeps the version it opened, whole; a new connection sees the new one.
    assert reader.execute("select count(*) from staging.stg_customers").fetchone() == (3,)
    assert reader.execute("select count(*) from marts.customers_enriched").fetchone() == (3,)
    reader.close()
    with duckdb.connect(str(tiny_pipeline.warehouse), read_only=True) as fresh:
        assert fresh.execute("select count(*) from marts.customers_enriched").fetchone() == (4,)


def test_two_runs_at_once_never_interleave(tiny_pipeline: Pipeline, tmp_path: Path) -> None:
    """Two runs on different exports and as-of dates started together: the second waits for
    the first, and the published tables all come from one of them."""
    other = dict(TINY_EXPORT)
    other["customers.csv"] = [
        *TINY_EXPORT["customers.csv"],
        "4,Ann,Lee,NULL,a@b.c,1 St,Austin,TX,1",
    ]
    second = tiny_pipeline.with_raw_dir(write_export(tmp_path / "other", other))
    environments = [
        _environment(tiny_pipeline, tmp_path / "home1", BIKE_AS_OF_DATE="2024-06-30"),
        _environment(
            second,
            tmp_path / "home2",
            BIKE_AS_OF_DATE="2024-12-31",
            BIKE_LOCK_TIMEOUT_SECONDS="120",
        ),
    ]
    environments[0]["BIKE_LOCK_TIMEOUT_SECONDS"] = "120"
    processes = [
        subprocess.Popen(
            MAIN_COMMAND, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for env in environments
    ]
    assert [process.wait(timeout=300) for process in processes] == [0, 0]
    tables = published_tables(tiny_pipeline)
    customers = len(tables["staging.stg_customers"])
    as_of = sorted(set(tables["marts.customers_enriched"]["as_of_date"].astype(str)))
    # One run's export with that same run's as-of date, in every table.
    assert (customers, as_of) in [(3, ["2024-06-30"]), (4, ["2024-12-31"])]
    assert len(tables["marts.customers_enriched"]) == customers


def test_a_run_that_cannot_get_the_warehouse_fails_saying_which_run_holds_it(
    tiny_pipeline: Pipeline,
) -> None:
    assert tiny_pipeline.run().success
    before = published_tables(tiny_pipeline)
    lock = Path(f"{tiny_pipeline.warehouse}.lock")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); "
            "fcntl.flock(f, fcntl.LOCK_EX); f.write('run r-1 (pid 1)'); f.flush(); "
            "print('held', flush=True); time.sleep(60)",
            str(lock),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        result = tiny_pipeline.with_env(BIKE_LOCK_TIMEOUT_SECONDS="0.5").run()
    finally:
        holder.kill()
        holder.wait()
    assert not result.success
    message = _failure_message(result)
    assert "Another run is writing the warehouse" in message
    assert "BIKE_LOCK_TIMEOUT_SECONDS" in message
    assert_tables_equal(published_tables(tiny_pipeline), before)


def _failure_message(result) -> str:
    """The text of a failed run's errors (step failures and resource failures)."""
    texts = []
    for event in result.all_events:
        error = getattr(event.event_specific_data, "error", None)
        if error is not None:
            texts.append(error.to_string())
    return "\n".join(texts)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("BIKE_DUCKDB_MEMORY_LIMIT", "abc", "a size such as 512MB"),
        ("BIKE_DUCKDB_THREADS", "0", "a whole number >= 1"),
        ("BIKE_DUCKDB_THREADS", "two", "a whole number >= 1"),
        ("BIKE_LOCK_TIMEOUT_SECONDS", "-1", "a number of seconds >= 0"),
        ("BIKE_MAX_REJECTED_SHARE", "nan", "a share from 0 to 1"),
        ("BIKE_MAX_REJECTED_SHARE", "1.5", "a share from 0 to 1"),
        ("BIKE_AS_OF_DATE", "2019-02-30", "a date written YYYY-MM-DD"),
        ("BIKE_AS_OF_DATE", "2019-13-01", "a date written YYYY-MM-DD"),
        ("BIKE_AS_OF_DATE", "0000-01-01", "a date written YYYY-MM-DD"),
        ("BIKE_SCHEDULE_TIMEZONE", "Mars/Olympus", "an IANA timezone name"),
    ],
)
def test_a_bad_setting_fails_before_anything_is_read_naming_the_variable(
    tiny_pipeline: Pipeline, variable: str, value: str, expected: str
) -> None:
    assert tiny_pipeline.run().success
    before = published_tables(tiny_pipeline)
    bad = tiny_pipeline.with_env(**{variable: value})
    if variable == "BIKE_SCHEDULE_TIMEZONE":  # read when the code location loads
        with pytest.raises(Exception) as raised:
            bad.definitions()
        assert f"{variable}='{value}': expected {expected}" in str(raised.value.__cause__)
        return
    result = bad.run(as_of=None)
    assert not result.success
    message = _failure_message(result)
    assert f"{variable}='{value}': expected {expected}" in message
    # Refused before any step ran: nothing read, nothing published.
    assert not [e for e in result.all_events if e.event_type_value == "STEP_START"]
    assert_tables_equal(published_tables(tiny_pipeline), before)


def test_an_invalid_as_of_date_in_the_run_config_is_refused_before_anything_is_read(
    tiny_pipeline: Pipeline,
) -> None:
    """Case as-of-invalid: run config as_of_date "2019-13-01"."""
    assert tiny_pipeline.run().success
    before = published_tables(tiny_pipeline)
    result = tiny_pipeline.run(as_of="2019-13-01")
    assert not result.success
    assert (
        "run config resources.calendar.config.as_of_date='2019-13-01': expected a date written "
        "YYYY-MM-DD" in _failure_message(result)
    )
    assert not [e for e in result.all_events if e.event_type_value == "STEP_START"]
    assert_tables_equal(published_tables(tiny_pipeline), before)


def test_checks_are_recorded_against_the_materialization_they_audited(
    tiny_pipeline: Pipeline,
) -> None:
    result = tiny_pipeline.run()
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert evaluations
    for evaluation in evaluations:
        assert evaluation.target_materialization_data.run_id == result.run_id


def test_staging_rebuilt_from_an_export_that_drops_customers_is_refused(
    tiny_pipeline: Pipeline, tmp_path: Path
) -> None:
    """A subset run of the staging tables alone, on an export without customer 3: the marts
    it does not rebuild would still hold customer 3, so nothing is published."""
    assert tiny_pipeline.run().success
    before = published_tables(tiny_pipeline)
    fewer = dict(TINY_EXPORT)
    fewer["customers.csv"] = TINY_EXPORT["customers.csv"][:2]
    staging = [
        dg.AssetKey(["staging", name])
        for name in (
            "stg_customers",
            "stg_stores",
            "stg_orders",
            "stg_order_items",
            "rejected_rows",
        )
    ]
    result = _run_subset(
        tiny_pipeline.with_raw_dir(write_export(tmp_path / "fewer", fewer)), staging, "2024-12-31"
    )
    assert not result.success
    assert "same_customer_ids_as_stg_customers" in _failure_message(result)
    assert_tables_equal(published_tables(tiny_pipeline), before)


def test_a_subset_run_publishes_its_tables_only_when_the_layers_still_agree(
    tiny_pipeline: Pipeline,
) -> None:
    """Rebuilding customers_enriched for another as-of date without the segment history would
    leave the history's current rows disagreeing: refused. With the history: published, and
    the tables the run did not rebuild kept as they were."""
    assert tiny_pipeline.run(as_of="2024-12-31").success
    before = published_tables(tiny_pipeline)
    marts = [
        dg.AssetKey(["marts", "customers_enriched"]),
        dg.AssetKey(["marts", "region_segment_summary"]),
    ]
    refused = _run_subset(tiny_pipeline, marts, as_of="2024-01-15")
    assert not refused.success
    assert "layers of the new version disagree" in _failure_message(refused)
    assert "current_rows_match_customers_enriched" in _failure_message(refused)
    assert_tables_equal(published_tables(tiny_pipeline), before)

    history = dg.AssetKey(["marts", "customer_segment_history"])
    result = _run_subset(tiny_pipeline, [*marts, history], as_of="2024-01-15")
    assert result.success, _failure_message(result)
    after = published_tables(tiny_pipeline)
    assert set(after["marts.customers_enriched"]["as_of_date"].astype(str)) == {"2024-01-15"}
    for name in ("staging.stg_customers", "intermediate.orders_enriched"):
        assert_tables_equal({name: after[name]}, {name: before[name]})


def _run_subset(
    pipeline: Pipeline, keys: list[dg.AssetKey], as_of: str
) -> dg.ExecuteInProcessResult:
    """Materialize only `keys` (as chosen in the UI), as of `as_of`."""
    with environment({**pipeline.environment, "BIKE_AS_OF_DATE": as_of}):
        job = defs().resolve_implicit_global_asset_job_def().get_subset(asset_selection=set(keys))
        return job.execute_in_process(raise_on_error=False)


def test_audit_job_before_the_first_run_says_so_once(tiny_pipeline: Pipeline) -> None:
    result = tiny_pipeline.run("audit_job")
    assert not result.success
    message = _failure_message(result)
    assert "No table has been published yet" in message
    assert "Run the daily_refresh job first" in message
    assert not [e for e in result.all_events if e.event_type_value == "STEP_START"]


def test_audit_job_fails_when_a_published_table_was_edited(tiny_pipeline: Pipeline) -> None:
    assert tiny_pipeline.run().success
    assert tiny_pipeline.run("audit_job").success
    with duckdb.connect(str(tiny_pipeline.warehouse)) as conn:
        conn.execute("delete from marts.customers_enriched where customer_id = 3")
    result = tiny_pipeline.run("audit_job")
    assert not result.success
    assert "same_customer_ids_as_stg_customers" in _failure_message(result)
