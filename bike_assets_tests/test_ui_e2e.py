"""The code location as a team runs it: `dagster dev` serving the UI, and what the UI shows.

The end-to-end test starts `dagster dev` at the repository root on a free port with a temporary
DAGSTER_HOME (holding the shipped dagster.yaml), previews a tick of the daily schedule and
launches it through the webserver's GraphQL API as the UI's "Preview tick result" / "Launch all"
does, waits for the run, then reads the tables back from DuckDB.
"""

import base64
import contextlib
import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from bike_assets.generate import generate_export
from bike_assets_tests.conftest import Pipeline

REPO = Path(__file__).resolve().parents[1]
LOCATION = {"repositoryLocationName": "bike_assets", "repositoryName": "__repository__"}
SCHEDULE = {**LOCATION, "scheduleName": "daily_refresh_schedule"}
CUSTOMERS = 200
AS_OF = "2024-06-30"
# The tick at 06:00 in Tokyo (UTC+9) on 2024-06-30 is 21:00 UTC on 2024-06-29.
TICK = datetime(2024, 6, 29, 21, 0, tzinfo=UTC)


class DagsterDev:
    """A `dagster dev` process group, and GraphQL requests to its webserver."""

    def __init__(self, port: int, env: dict[str, str], log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        with log.open("wb") as out:
            # Its own process group, with default SIGINT/SIGTERM handlers even when pytest runs
            # in a background shell (which ignores SIGINT; `dagster dev` then ignores SIGTERM).
            self.process = subprocess.Popen(
                [sys.executable, "-m", "dagster", "dev", "-h", "127.0.0.1", "-p", str(port)],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_default_signal_handlers,
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

    def wait_for_location(self, timeout: float = 60) -> None:
        """Until the webserver answers and the code location is loaded."""
        query = """query { workspaceLocationEntryOrError(name: "bike_assets") {
            __typename ... on WorkspaceLocationEntry { loadStatus
              locationOrLoadError { __typename ... on PythonError { message } } } } }"""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"dagster dev exited:\n{self.output()}"
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

    def wait_for_run(self, run_id: str, timeout: float = 120) -> dict[str, Any]:
        query = """query($runId: ID!) { runOrError(runId: $runId) { __typename
            ... on Run { status runConfig tags { key value } } } }"""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.gql(query, runId=run_id)["runOrError"]
            if run["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
                return run
            time.sleep(0.5)
        raise AssertionError(f"run {run_id} did not finish in {timeout} s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-5000:]

    def stop(self) -> None:
        """Stop every process of the group, gracefully first, then by force."""
        pgid = self.process.pid
        _signal_group(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=15)
        _signal_group(pgid, signal.SIGKILL)
        self.process.wait()
        deadline = time.monotonic() + 10
        while _live_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _live_members(pgid), f"processes left running: {_live_members(pgid)}"


def _default_signal_handlers() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _live_members(pgid: int) -> list[str]:
    """The processes of group pgid that are still running (not zombies), from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, group = fields[0], int(fields[2])
        if group == pgid and state != "Z":
            members.append(stat.parent.name)
    return members


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def dagster_dev(tmp_path: Path) -> Iterator[tuple[DagsterDev, Path, Path]]:
    """`dagster dev` on a generated export; yields it, the warehouse path and the export folder."""
    raw_dir = tmp_path / "raw"
    generate_export(raw_dir, CUSTOMERS, seed=11)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home)
    warehouse = tmp_path / "warehouse.duckdb"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BIKE_", "DAGSTER_"))}
    env |= {
        "DAGSTER_HOME": str(home),
        "BIKE_DUCKDB_PATH": str(warehouse),
        "BIKE_RAW_DIR": str(raw_dir),
        "BIKE_PII_KEY": "test-key",
        "BIKE_SCHEDULE_TIMEZONE": "Asia/Tokyo",
    }
    server = DagsterDev(_free_port(), env, tmp_path / "dagster_dev.log")
    try:
        server.wait_for_location()
        yield server, warehouse, raw_dir
    finally:
        server.stop()


def test_scheduled_job_launched_from_the_ui_builds_the_tables(
    dagster_dev: tuple[DagsterDev, Path, Path],
) -> None:
    server, warehouse, raw_dir = dagster_dev
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
        "scheduleState": {"status": "RUNNING"},  # on as soon as the daemon runs
    }

    # "Preview tick result" for the tick, then "Launch all", as the UI sends them.
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
                    "jobName": request["jobName"] or schedule["pipelineName"],
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

    run = server.wait_for_run(result["run"]["id"])
    assert run["status"] == "SUCCESS", server.output()
    assert run["runConfig"] == {"ops": {"customers_enriched": {"config": {"as_of_date": AS_OF}}}}
    assert {"key": "bike/as_of_date", "value": AS_OF} in run["tags"]

    # Independent route: from orders.csv, the customers with an order dated by the as-of date.
    with (raw_dir / "orders.csv").open(encoding="utf-8-sig", newline="") as f:
        buyers = {row["customer_id"] for row in csv.DictReader(f) if row["order_date"] <= AS_OF}
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        customers, with_orders, as_of_dates, last_order = conn.execute(
            "select count(*), count(total_orders), list(distinct as_of_date::varchar), "
            "max(last_order_date)::varchar from marts.customers_enriched"
        ).fetchone()
        (summarized,) = conn.execute(
            "select sum(num_customers) from marts.region_segment_summary"
        ).fetchone()
    assert customers == CUSTOMERS
    assert as_of_dates == [AS_OF]
    assert last_order <= AS_OF
    assert with_orders == summarized == len(buyers)


def test_mart_charts_render_inline_and_as_pictures(tiny_pipeline: Pipeline) -> None:
    """The charts of the tiny export as of 2024-12-31, figures computed by hand.

    Customer 1: 2 orders, 190.27 (Regular, Bronze). Customer 2 (NY): 1 order, 479.99 (New,
    Bronze). Customer 3: no orders (New, no tier). Customers 1 and 2 are in NY: Northeast x
    Bronze has 2 customers, avg LTV (190.27 + 479.99) / 2 = 335.13.
    """
    result = tiny_pipeline.run()
    assert result.success
    (customers,) = result.asset_materializations_for_node("customers_enriched")
    (summary,) = result.asset_materializations_for_node("region_segment_summary")
    metadata = {**customers.metadata, **summary.metadata}

    # Inline charts: a code block, shorter than the 1,000 characters the UI shows inline.
    segment_mix = metadata["segment_mix"].value
    grid = metadata["region_tier_grid"].value
    assert len(segment_mix) < 1000 and len(grid) < 1000
    # Bars scale to the largest count of their chart (2: 16 characters, 1: 8); 1/3 = 33%.
    assert "\nRegular   ████████               1  33%\n" in segment_mix
    assert "\nNew       ████████████████       2  67%\n" in segment_mix
    assert "\nVIP                              0   0%\n" in segment_mix
    assert "\nNo orders ████████               1  33%\n" in segment_mix
    assert "\nBronze    ████████████████       2  67%\n" in segment_mix
    assert "\nNortheast        -       -       - ██    2\n" in grid
    assert "\nNortheast        -       -       -    $335\n" in grid

    # Pictures: SVG images in data URIs, which the UI's markdown renders.
    for key, texts in {
        "segment_mix_chart": [">Regular<", ">1 (33%)<", ">2 (67%)<"],
        "region_tier_chart": [">Northeast<", ">Bronze<", ">avg $335<"],
    }.items():
        encoded = re.fullmatch(
            r"!\[[^]]*\]\(data:image/svg\+xml;base64,(.+)\)", metadata[key].value
        )
        assert encoded, key
        svg = base64.b64decode(encoded[1]).decode()
        assert svg.startswith("<svg xmlns=") and all(t in svg for t in texts), key
