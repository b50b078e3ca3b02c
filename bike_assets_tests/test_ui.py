"""What the operator and the analyst see, through the webserver's GraphQL API (the UI's own).

One webserver (`dagster-webserver -w workspace.yaml`, no daemon) on a free port, with a
temporary DAGSTER_HOME holding the shipped dagster.yaml, a generated export (with one order
line of an unknown order, which is quarantined) and a temporary warehouse. The module's fixture
launches a tick of the daily schedule as the UI's "Preview tick result" / "Launch all" does
(the run waits in the queue: no daemon runs), then runs the README's main command, `make run`,
with the same DAGSTER_HOME and settings: it queues its own run and, no daemon running, starts
one for the time of its run, which starts both runs in turn. The tests then read what the UI
shows. Every process started here (found by the temporary DAGSTER_HOME in its environment) is
stopped at the end, even on failure.

A last test starts `make ui` in the background as a shell script would, and stops it with
SIGTERM, then with Ctrl-C (SIGINT to its process group).
"""

import contextlib
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from bike_assets.tools.generate import generate_export

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# `make run` as the README says; -o: never reinstall the environment from a test.
MAIN_COMMAND = ["make", "--no-print-directory", "-o", ".venv/installed", "run"]
LOCATION = {"repositoryLocationName": "bike_assets", "repositoryName": "__repository__"}
JOB = {**LOCATION, "pipelineName": "daily_refresh"}
SCHEDULE = {**LOCATION, "scheduleName": "daily_refresh_schedule"}
CUSTOMERS = 200
AS_OF = "2024-06-30"
# The tick at 06:00 in Tokyo (UTC+9) on 2024-06-30 is 21:00 UTC on 2024-06-29.
TICK = datetime(2024, 6, 29, 21, 0, tzinfo=UTC)
ORPHAN_LINE = "999999999,1,10,1,5.00,0"  # an order line of an order the export does not have
JOB_LINE = "daily_refresh: run "  # the main command's line naming its run
DAY_AND_TWO_HOURS = 26 * 3600


# --- processes ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _processes(where: Callable[[Path], bool]) -> list[int]:
    """The live processes (not zombies) whose /proc entry matches `where`."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, IndexError):
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if state != "Z" and where(entry):
                found.append(int(entry.name))
    return found


def _using_home(home: Path) -> Callable[[Path], bool]:
    """Matches the processes started with DAGSTER_HOME=home (and their children)."""
    marker = f"DAGSTER_HOME={home}".encode()
    return lambda entry: marker in (entry / "environ").read_bytes().split(b"\0")


def _in_group(pgid: int) -> Callable[[Path], bool]:
    return lambda entry: int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2]) == pgid


def _wait_until_gone(where: Callable[[Path], bool], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := _processes(where)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def _kill_all(where: Callable[[Path], bool]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _processes(where):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        if not _wait_until_gone(where, 10):
            return


def _default_signals() -> None:
    """The signal handling a terminal gives a command (pytest may run in a background shell,
    which ignores SIGINT)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _as_background_job() -> None:
    """The signal handling of a command a shell script starts with `&`: SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


# --- the webserver ------------------------------------------------------------------------


class Webserver:
    """A `dagster-webserver` process and GraphQL requests to it."""

    def __init__(self, port: int, env: dict[str, str], log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        command = [str(BIN / "dagster-webserver"), "-w", "workspace.yaml"]
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [*command, "-h", "127.0.0.1", "-p", str(port)],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_default_signals,
            )

    def gql(self, query: str, **variables: Any) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables}).encode()
        request = urllib.request.Request(
            self.url + "/graphql", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.load(response)
        assert "errors" not in answer, answer["errors"]
        return answer["data"]

    def wait_for_location(self, timeout: float = 90) -> None:
        """Until the webserver answers and the code location is loaded."""
        query = """query { workspaceLocationEntryOrError(name: "bike_assets") {
            __typename ... on WorkspaceLocationEntry { loadStatus
              locationOrLoadError { __typename ... on PythonError { message } } } } }"""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the webserver exited:\n{self.output()}"
            try:
                entry = self.gql(query)["workspaceLocationEntryOrError"]
            except (urllib.error.URLError, ConnectionError):
                entry = None
            if entry and entry.get("loadStatus") == "LOADED":
                location = entry["locationOrLoadError"]
                assert location["__typename"] == "RepositoryLocation", location
                return
            time.sleep(0.5)
        raise AssertionError(f"the code location did not load in {timeout} s:\n{self.output()}")

    def run(self, run_id: str) -> dict[str, Any]:
        return self.gql(
            """query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { id status
                pipelineName runConfig tags { key value }
                repositoryOrigin { repositoryLocationName repositoryName } } } }""",
            id=run_id,
        )["runOrError"]

    def asset(self, path: list[str], fields: str) -> dict[str, Any]:
        return self.gql(
            "query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { __typename "
            f"... on AssetNode {{ {fields} }} }} }}",
            key={"path": path},
        )["assetNodeOrError"]

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-5000:]


@dataclass
class Session:
    """What the module's fixture did: the webserver, the runs, the terminal's output."""

    server: Webserver
    warehouse: Path
    raw_dir: Path
    scheduled_run: str  # launched from the schedule's tick, as the UI does
    command: subprocess.CompletedProcess[str]  # the README's main command
    run_id: str  # the main command's run


def _launch_tick(server: Webserver) -> str:
    """ "Preview tick result" for TICK on the schedule's page, then "Launch all"; the run id."""
    preview = server.gql(
        """mutation($s: ScheduleSelector!, $t: Float) { scheduleDryRun(selectorData: $s,
            timestamp: $t) { __typename ... on DryRunInstigationTick { evaluationResult {
              runRequests { runConfigYaml jobName tags { key value } } error { message } } } } }""",
        s=SCHEDULE,
        t=TICK.timestamp(),
    )["scheduleDryRun"]
    (request,) = preview["evaluationResult"]["runRequests"]
    launched = server.gql(
        """mutation($p: [ExecutionParams!]!) { launchMultipleRuns(executionParamsList: $p) {
            __typename ... on LaunchMultipleRunsResult { launchMultipleRunsResult {
              __typename ... on LaunchRunSuccess { run { id } } } } } }""",
        p=[
            {
                "runConfigData": request["runConfigYaml"],
                "selector": {
                    **LOCATION,
                    "jobName": request["jobName"] or "daily_refresh",
                    "assetSelection": [],
                    "assetCheckSelection": [],
                },
                "mode": "default",
                "executionMetadata": {"tags": request["tags"]},
            }
        ],
    )["launchMultipleRuns"]
    (result,) = launched["launchMultipleRunsResult"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return result["run"]["id"]


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    tmp = tmp_path_factory.mktemp("ui")
    raw_dir = tmp / "raw"
    generate_export(raw_dir, CUSTOMERS, seed=11)
    with (raw_dir / "order_items.csv").open("a", encoding="utf-8", newline="") as f:
        f.write(ORPHAN_LINE + "\r\n")
    home = tmp / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home)
    warehouse = tmp / "warehouse.duckdb"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BIKE_", "DAGSTER_"))}
    env |= {
        "DAGSTER_HOME": str(home),
        "BIKE_DUCKDB_PATH": str(warehouse),
        "BIKE_RAW_DIR": str(raw_dir),
        "BIKE_PII_KEY": "test-key",
        "BIKE_SCHEDULE_TIMEZONE": "Asia/Tokyo",
        "BIKE_MAX_REJECTED_SHARE": "0.05",
    }
    server = Webserver(_free_port(), env, tmp / "webserver.log")
    try:
        server.wait_for_location()
        scheduled_run = _launch_tick(server)
        command = subprocess.run(
            MAIN_COMMAND,
            cwd=REPO,
            env={**env, "BIKE_AS_OF_DATE": AS_OF},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=240,
            preexec_fn=_default_signals,
            check=False,
        )
        launched = [line for line in command.stdout.splitlines() if line.startswith(JOB_LINE)]
        run_id = launched[0].removeprefix(JOB_LINE).split(",")[0] if launched else ""
        yield Session(server, warehouse, raw_dir, scheduled_run, command, run_id)
    finally:
        _kill_all(_using_home(home))
        assert _processes(_using_home(home)) == []


# --- the tests ----------------------------------------------------------------------------


def test_main_command_prints_its_info_and_ends_with_the_summary(session: Session) -> None:
    command = session.command
    assert command.returncode == 0, command.stdout + command.stderr
    lines = command.stdout.splitlines()
    started = "started by a Dagster daemon for the time of this run"  # no `make ui` running
    assert f"{JOB_LINE}{session.run_id}, {started}" in lines[:2]  # after make's echo
    assert "DEBUG" not in command.stdout and "Traceback" not in command.stdout + command.stderr
    # The quarantined line's WARN check is named, at WARNING, before the summary.
    warned = [line for line in lines if " WARNING staging: WARN check " in line]
    assert len(warned) == 1 and warned[0].endswith(
        "staging/rejected_rows / no_rejected_rows failed: 1 row(s)"
    ), lines
    # The summary ends the output: what was published, the checks, the path, the time.
    start = next(
        i for i, line in enumerate(lines) if line.endswith(f"Published {session.warehouse}:")
    )
    summary = lines[start + 1 :]
    assert "  marts.customers_enriched (200 rows)" in summary
    assert "  checks: " in "\n".join(summary) and "1 failed (WARN)" in "\n".join(summary)
    assert "    staging/rejected_rows / no_rejected_rows: 1 row(s)" in summary
    assert summary[-1].startswith("  in ") and summary[-1].endswith(" s")


def test_the_run_shows_on_the_job_page_and_in_the_timeline(session: Session) -> None:
    server = session.server
    runs = server.gql(
        """query($p: PipelineSelector!) { pipelineOrError(params: $p) { __typename
            ... on Pipeline { runs { id status } } } }""",
        p=JOB,
    )["pipelineOrError"]["runs"]
    statuses = {run["id"]: run["status"] for run in runs}
    assert statuses[session.run_id] == "SUCCESS"  # the job page's runs
    assert statuses[session.scheduled_run] == "SUCCESS"
    run = server.run(session.run_id)
    # The timeline places a run by its code location (runs without one are left out).
    assert run["repositoryOrigin"] == LOCATION
    assert run["runConfig"] == {"resources": {"calendar": {"config": {"as_of_date": AS_OF}}}}
    assert {"key": "bike/as_of_date", "value": AS_OF} in run["tags"]


def test_a_scheduled_tick_launched_from_the_ui_builds_the_tables(session: Session) -> None:
    server = session.server
    schedule = server.gql(
        """query($s: ScheduleSelector!) { scheduleOrError(scheduleSelector: $s) {
            ... on Schedule { cronSchedule executionTimezone pipelineName
                              scheduleState { status } } } }""",
        s=SCHEDULE,
    )["scheduleOrError"]
    assert schedule == {
        "cronSchedule": "0 6 * * *",
        "executionTimezone": "Asia/Tokyo",
        "pipelineName": "daily_refresh",
        "scheduleState": {"status": "RUNNING"},  # on as soon as a daemon runs
    }
    run = server.run(session.scheduled_run)
    assert run["status"] == "SUCCESS", run
    assert run["runConfig"] == {"resources": {"calendar": {"config": {"as_of_date": AS_OF}}}}
    assert {"key": "bike/as_of_date", "value": AS_OF} in run["tags"]

    # Independent route: from orders.csv, the customers with an order dated by the as-of date.
    with (session.raw_dir / "orders.csv").open(encoding="utf-8-sig", newline="") as f:
        buyers = {row["customer_id"] for row in csv.DictReader(f) if row["order_date"] <= AS_OF}
    with duckdb.connect(str(session.warehouse), read_only=True) as conn:
        customers, with_orders, as_of_dates, last_order = conn.execute(
            "select count(*), count(total_orders), list(distinct as_of_date::varchar), "
            "max(last_order_date)::varchar from marts.customers_enriched"
        ).fetchone()
        (summarized,) = conn.execute(
            "select sum(num_customers) from marts.region_segment_summary"
        ).fetchone()
        (rejected,) = conn.execute("select count(*) from staging.rejected_rows").fetchone()
    assert customers == CUSTOMERS
    assert as_of_dates == [AS_OF]
    assert last_order <= AS_OF
    assert with_orders == summarized == len(buyers)
    assert rejected == 1


def test_the_marts_have_a_freshness_policy_of_the_daily_schedule(session: Session) -> None:
    nodes = session.server.gql(
        """query { assetNodes { assetKey { path } internalFreshnessPolicy { __typename
            ... on TimeWindowFreshnessPolicy { failWindowSeconds } } } }"""
    )["assetNodes"]
    policies = {"/".join(n["assetKey"]["path"]): n["internalFreshnessPolicy"] for n in nodes}
    marts = [key for key in policies if key.startswith("marts/")]
    assert {"marts/customers_enriched", "marts/region_segment_summary"} <= set(marts)
    for mart in marts:
        assert policies[mart] == {
            "__typename": "TimeWindowFreshnessPolicy",
            "failWindowSeconds": DAY_AND_TWO_HOURS,
        }, mart
    assert policies["staging/stg_customers"] is None


def test_each_check_of_customers_enriched_audits_the_runs_materialization(
    session: Session,
) -> None:
    node = session.server.asset(
        ["marts", "customers_enriched"],
        """assetMaterializations(limit: 1) { runId }
        assetChecksOrError { __typename ... on AssetChecks { checks { name
          executionForLatestMaterialization { runId status
            evaluation { targetMaterialization { runId } } } } } }""",
    )
    ((materialization,),) = [node["assetMaterializations"]]
    assert materialization["runId"] == session.run_id  # the main command's run, the last one
    checks = node["assetChecksOrError"]["checks"]
    assert len(checks) >= 8
    for check in checks:
        execution = check["executionForLatestMaterialization"]
        assert execution["runId"] == session.run_id, check
        assert execution["status"] == "SUCCEEDED", check
        assert execution["evaluation"]["targetMaterialization"] == {"runId": session.run_id}


def test_the_export_files_are_observed_with_size_and_modification_time(session: Session) -> None:
    for name in ("customers", "orders", "order_items", "stores"):
        path = session.raw_dir / f"{name}.csv"
        node = session.server.asset(
            ["raw", name],
            """dataVersion assetObservations(limit: 1) { runId
              metadataEntries { label ... on IntMetadataEntry { intValue }
                ... on TimestampMetadataEntry { timestamp } } }""",
        )
        ((observation,),) = [node["assetObservations"]]
        assert observation["runId"] == session.run_id
        metadata = {
            e["label"]: e.get("intValue", e.get("timestamp"))
            for e in observation["metadataEntries"]
        }
        assert metadata["size_bytes"] == path.stat().st_size
        assert metadata["modified_at"] == pytest.approx(path.stat().st_mtime, abs=1e-3)
        assert node["dataVersion"].startswith(f"{path.stat().st_size} bytes, modified ")


def test_previews_show_the_columns_analysts_read_first_and_the_row_count(
    session: Session,
) -> None:
    node = session.server.asset(
        ["marts", "customers_enriched"],
        """assetMaterializations(limit: 1) { metadataEntries { label
          ... on MarkdownMetadataEntry { mdStr } } }""",
    )
    metadata = {
        e["label"]: e.get("mdStr") for e in node["assetMaterializations"][0]["metadataEntries"]
    }
    preview = metadata["preview"]
    assert preview.startswith(f"First 10 of {CUSTOMERS} rows; columns customer_id, region, ")
    header = preview.split("\n\n", 1)[1].splitlines()[0]
    assert "email_hash" not in header
    for column in ("customer_id", "customer_segment", "ltv_segment", "total_spent"):
        assert column in header


# --- make ui --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("how", "stop"),
    [
        ("SIGTERM to make", lambda pid: os.kill(pid, signal.SIGTERM)),
        ("Ctrl-C", lambda pid: os.killpg(pid, signal.SIGINT)),
    ],
)
def test_make_ui_started_in_the_background_stops_with_all_its_processes(
    tmp_path: Path, how: str, stop: Callable[[int], None]
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home)
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "BIKE_DUCKDB_PATH": str(tmp_path / "w.db")}
    with (tmp_path / "make_ui.log").open("wb") as log:
        make = subprocess.Popen(
            [
                "make",
                "--no-print-directory",
                "-o",
                ".venv/installed",
                "ui",
                f"DG_DEV_ARGS=--port {port}",
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_as_background_job,
        )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2)
                break
            assert make.poll() is None, (tmp_path / "make_ui.log").read_text()
            time.sleep(0.5)
        # The webserver, the daemon and the code servers all run under make.
        assert len(_processes(_in_group(make.pid))) >= 4, how
        stop(make.pid)
        left = _wait_until_gone(_in_group(make.pid), 15)
        assert left == [], f"{how}: still running {left}"
    finally:
        _kill_all(_in_group(make.pid))
        _kill_all(_using_home(home))
