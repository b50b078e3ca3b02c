"""The `bike-assets` console command: run a job as the UI shows it, generate sample exports,
and benchmark the main command."""

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from bike_assets.tools.bench import AS_OF, MAIN_COMMAND, REPO_ROOT, bench

if TYPE_CHECKING:
    import dagster as dg


def _generate(args: argparse.Namespace) -> None:
    from bike_assets.tools.generate import generate_export  # pandas: only for this command

    counts = generate_export(Path(args.out), customers=args.customers, seed=args.seed)
    for name, rows in counts.items():
        print(f"{args.out}/{name}: {rows} rows")


def _bench(args: argparse.Namespace) -> None:
    if bool(args.dbt_project) != bool(args.dbt):
        raise SystemExit("bike-assets bench: --dbt-project and --dbt go together")
    report, ok = bench(
        args.customers,
        seed=args.seed,
        workdir=Path(args.workdir) if args.workdir else None,
        reuse=args.reuse,
        repeat=args.repeat,
        floor=Path(args.floor) if args.floor else None,
        dbt_project=Path(args.dbt_project) if args.dbt_project else None,
        dbt=args.dbt,
    )
    print(report)
    if not ok:
        raise SystemExit(1)


# --- run: a job launched through the instance's run queue, followed to its end -------------

WORKSPACE = REPO_ROOT / "workspace.yaml"
QUEUE_DAEMON = "QUEUED_RUN_COORDINATOR"  # the daemon type that starts queued runs
DAEMON_SILENT_AFTER = 45.0  # seconds without a heartbeat (sent every 30 s): not running
POLL_SECONDS = 0.2
AS_OF_TAG = "bike/as_of_date"  # as the schedule tags its runs
# Read by the process that executes the run: a running daemon has its own values.
RUN_SETTINGS = (
    "BIKE_DUCKDB_PATH",
    "BIKE_RAW_DIR",
    "BIKE_PII_KEY",
    "BIKE_SCHEDULE_TIMEZONE",
    "BIKE_MAX_REJECTED_SHARE",
    "BIKE_DUCKDB_MEMORY_LIMIT",
    "BIKE_DUCKDB_THREADS",
    "BIKE_LOCK_TIMEOUT_SECONDS",
)


def _run(args: argparse.Namespace) -> None:
    raise SystemExit(run_job(args.job, as_of=args.as_of))


def run_job(job: str, as_of: str | None = None, out: TextIO = sys.stdout) -> int:
    """Launch a job as the UI does and follow it to its end; return the exit status.

    The run is created from the workspace's code location (`dagster job launch -w
    workspace.yaml`), so it carries the location's origin and shows on the job's page and in
    the timeline, and it waits in the instance's run queue like any other run (one at a time).
    The Dagster daemon starts it: the one of a running `make ui` (the run then has that
    process's settings: its environment and .env), else a daemon started here for the time of
    the run (with this shell's environment). The as-of date (`as_of`, else BIKE_AS_OF_DATE) is
    put in daily_refresh's run config either way.

    Prints the run's events at BIKE_LOG_LEVEL (default INFO) and above, ending with the
    warehouse's summary (or the failure). Ctrl-C terminates the run. Returns 0 when the run
    succeeded, 1 when it failed or was canceled, 2 for a usage error.
    """
    if not os.environ.get("DAGSTER_HOME"):
        print("bike-assets run: set DAGSTER_HOME (make sets it to dagster_home/)", file=out)
        return 2
    level = logging.getLevelName((os.environ.get("BIKE_LOG_LEVEL") or "INFO").upper())
    if not isinstance(level, int):
        print("bike-assets run: BIKE_LOG_LEVEL is DEBUG, INFO, WARNING or ERROR", file=out)
        return 2
    as_of = as_of or os.environ.get("BIKE_AS_OF_DATE") or None
    previous = signal.signal(signal.SIGTERM, _interrupt)  # `kill`, or make stopped: as Ctrl-C
    # The launch (about 4 s: it loads the code location) starts first. The instance is opened
    # once it has ended (on a new DAGSTER_HOME, two processes creating its storage at once
    # fail); the daemon, if one is started here, once the run is queued, so that its first
    # pass over the queue starts it.
    launch = _Launch(job, str(uuid.uuid4()), as_of)
    try:
        launched: tuple[int, str] | None = None  # None: interrupted
        try:
            import dagster as dg  # meanwhile

            launched = launch.wait()
        except KeyboardInterrupt:
            launch.stop()
        import dagster as dg  # (done above, unless Ctrl-C came first)

        with dg.DagsterInstance.get() as instance, _Daemon(instance) as daemon:
            return _follow(instance, daemon, launch, launched, level, out)
    finally:
        launch.stop()  # if it still runs
        signal.signal(signal.SIGTERM, previous)


def _follow(
    instance: "dg.DagsterInstance",
    daemon: "_Daemon",
    launch: "_Launch",
    launched: tuple[int, str] | None,
    level: int,
    out: TextIO,
) -> int:
    """run_job's work once the launch has ended (`launched`: its exit status and output, None
    when interrupted), in the instance and with the daemon it opened."""
    import dagster as dg

    job, run_id = launch.job, launch.run_id
    if launched is None:
        if instance.get_run_by_id(run_id) is not None:
            instance.run_coordinator.cancel_run(run_id)
        print(f"{job}: not launched (interrupted)", file=out)
        return 1
    returncode, output = launched
    if returncode != 0:
        tail = "\n".join(output.splitlines()[-25:])
        print(f"bike-assets run: `dagster job launch` failed:\n{tail}", file=out)
        return 1
    daemon.start_unless_running()
    ignored = [name for name in RUN_SETTINGS if os.environ.get(name)]
    if daemon.process is None and ignored:
        print(
            f"Note: {job} runs in the Dagster daemon of `make ui`, with the settings `make ui` "
            f"was started with (its environment and .env), not this shell's "
            f"{', '.join(ignored)}.",
            file=out,
        )
    print(f"{job}: run {run_id}, {daemon.describe()}", file=out, flush=True)
    follower = _Follower(instance, run_id, level)
    try:
        run = follower.until_ended(daemon, out)
    except KeyboardInterrupt:
        print(f"{job}: terminating run {run_id}", file=out, flush=True)
        instance.run_coordinator.cancel_run(run_id)
        run = follower.until_ended(daemon, out)
    if run.status != dg.DagsterRunStatus.SUCCESS:
        print(f"{job}: run {run_id} {run.status.value}", file=out)
        return 1
    daemon.report_queued(out)
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


class _Launch:
    """`dagster job launch`, started now: it creates the run from the workspace's code
    location and queues it."""

    def __init__(self, job: str, run_id: str, as_of: str | None) -> None:
        self.job = job
        self.run_id = run_id
        command = [
            str(Path(sys.executable).with_name("dagster")),
            *("job", "launch", "-w", str(WORKSPACE), "-j", job, "--run-id", run_id),
        ]
        if as_of and job == "daily_refresh":  # as the schedule sets it
            config = {"resources": {"calendar": {"config": {"as_of_date": as_of}}}}
            command += ["--config-json", json.dumps(config)]
            command += ["--tags", json.dumps({AS_OF_TAG: as_of})]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def wait(self) -> tuple[int, str]:
        """Wait for the launch to end; its exit status and output."""
        output, _ = self.process.communicate()
        return self.process.returncode, output

    def stop(self) -> None:
        """Stop the launch if it still runs, and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.communicate()


class _Follower:
    """Prints a run's events at a level and above, from where it left off."""

    def __init__(self, instance: "dg.DagsterInstance", run_id: str, level: int) -> None:
        self.instance = instance
        self.run_id = run_id
        self.level = level
        self.cursor: str | None = None
        self.errors_shown: set[str] = set()

    def until_ended(self, daemon: "_Daemon", out: TextIO) -> "dg.DagsterRun":
        """Print the run's events until it has ended; return the run."""
        import dagster as dg

        ended = {
            dg.DagsterRunStatus.SUCCESS,
            dg.DagsterRunStatus.FAILURE,
            dg.DagsterRunStatus.CANCELED,
        }
        while True:
            run = self.instance.get_run_by_id(self.run_id)
            if run is None:
                raise RuntimeError(f"run {self.run_id} is not in the instance at DAGSTER_HOME")
            connection = self.instance.get_records_for_run(self.run_id, cursor=self.cursor)
            for record in connection.records:
                line = event_line(record.event_log_entry, self.level, self.errors_shown)
                if line:
                    print(line, file=out, flush=True)
            self.cursor = connection.cursor
            if run.status in ended and not connection.has_more:
                return run
            if run.status == dg.DagsterRunStatus.QUEUED and daemon.start_unless_running():
                print(f"No daemon answers: {daemon.describe()}", file=out, flush=True)
            if not connection.has_more:
                time.sleep(POLL_SECONDS)


def event_line(entry: Any, level: int, errors_shown: set[str]) -> str | None:
    """An event as the terminal shows it, or None to leave it out.

    Shown: the run's own messages (its assets' logs) at `level` and above; Dagster's events
    at WARNING and above (a step's or the run's failure, with the error's message the first
    time it is seen: `errors_shown` collects them), or all of them (with stack traces) when
    `level` is DEBUG.
    """
    debug = level <= logging.DEBUG
    if entry.level < level or (
        entry.is_dagster_event and not debug and entry.level < logging.WARNING
    ):
        return None
    event = entry.dagster_event if entry.is_dagster_event else None
    message = entry.user_message or (event.message if event else "") or ""
    error = getattr(event.event_specific_data, "error", None) if event else None
    if error is not None:
        while error.cause is not None and not debug:
            error = error.cause  # the pipeline's own exception, under Dagster's wrapping
        text = (error.to_string() if debug else error.message).rstrip()
        if error.cls_name == "DagsterExecutionInterruptedError" and not debug:
            text = ""  # the step was stopped: no more to say
        if text and text not in errors_shown:
            errors_shown.add(text)
            message += "\n" + text
    if not message and event is not None:
        message = event.event_type_value
    when = datetime.fromtimestamp(entry.timestamp).strftime("%H:%M:%S")
    return (
        f"{when} {logging.getLevelName(entry.level)} {entry.step_key or entry.job_name}: {message}"
    )


class _Daemon:
    """The Dagster daemon that starts queued runs: a running one, or one started here, stopped
    at the end. The one started here stays in this process group: Ctrl-C in the terminal (or
    a kill of the group) reaches it, its code server and the run's process too."""

    def __init__(self, instance: "dg.DagsterInstance") -> None:
        self.instance = instance
        self.process: subprocess.Popen[bytes] | None = None
        self.log = Path(tempfile.gettempdir()) / f"bike-assets-daemon-{os.getpid()}.log"
        self.keep_log = False

    def __enter__(self) -> "_Daemon":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def running_elsewhere(self) -> bool:
        """Whether another process's run-queue daemon has sent a heartbeat lately."""
        beat = self.instance.get_daemon_heartbeats().get(QUEUE_DAEMON)
        return beat is not None and time.time() - beat.timestamp < DAEMON_SILENT_AFTER

    def start_unless_running(self) -> bool:
        """Start a daemon unless one runs (here or elsewhere); whether it started one now.

        Raises RuntimeError, keeping its log, when the one started here has stopped.
        """
        if self.process is not None:
            if self.process.poll() is not None:
                self.keep_log = True
                raise RuntimeError(f"the Dagster daemon stopped; its log: {self.log}")
            return False
        if self.running_elsewhere():
            return False
        daemon = str(Path(sys.executable).with_name("dagster-daemon"))
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [daemon, "run", "-w", str(WORKSPACE), "--log-level", "warning"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return True

    def describe(self) -> str:
        """Which daemon starts the run, for the terminal."""
        if self.process is None:
            return "started by the running Dagster daemon (make ui)"
        return "started by a Dagster daemon for the time of this run"

    def report_queued(self, out: TextIO) -> None:
        """Name the runs left in the queue when the daemon started here stops (e.g. the
        schedule's tick it launched); the next daemon (make ui) starts them."""
        import dagster as dg

        if self.process is None:
            return
        queued = self.instance.get_run_records(
            filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED])
        )
        for record in queued:
            run = record.dagster_run
            print(f"Left queued, for the next daemon: {run.job_name} run {run.run_id}", file=out)

    def stop(self) -> None:
        """Stop the daemon started here (it stops its code server), gracefully then by force,
        and forget its heartbeats."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        # Its last heartbeat would pass for a running daemon's for a while: the next run would
        # wait for it. (A daemon that runs sends its next one within 30 s.)
        self.instance.wipe_daemon_heartbeats()
        if not self.keep_log:
            self.log.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bike-assets", description=__doc__)
    commands = parser.add_subparsers(required=True)

    run = commands.add_parser(
        "run",
        help="run a job as the UI shows it (default daily_refresh), printing its log and summary",
        description=run_job.__doc__,
    )
    run.add_argument("--job", default="daily_refresh", help="daily_refresh or audit_job")
    run.add_argument("--as-of", help="the run's as-of date, YYYY-MM-DD (default BIKE_AS_OF_DATE)")
    run.set_defaults(run=_run)

    generate = commands.add_parser("generate", help="write a realistic BikeStores export")
    generate.add_argument("--customers", type=int, required=True, help="how many customers")
    generate.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    generate.add_argument("--out", required=True, help="folder to write the CSV files to")
    generate.set_defaults(run=_generate)

    command = " ".join(MAIN_COMMAND)
    bench_command = commands.add_parser(
        "bench",
        help=f"time `{command}` as a whole process, beside a plain DuckDB floor and dbt-duckdb",
        description=f"Generates an export, then runs `{command}` on it (as of {AS_OF}) and, "
        "when given, the floor script and a dbt-duckdb project, each run a separate process, "
        "the sides taking turns; prints a markdown table, a row per side: median, min and max "
        "wall time, median peak memory (the summed RSS of the side's whole process tree, "
        "sampled every 50 ms, and the largest single process's), and each median wall time "
        "divided by the floor's and dbt-duckdb's. Logs go to <workdir>/logs. Exits 1 if a "
        "side failed.",
    )
    bench_command.add_argument("--customers", type=int, required=True, help="how many customers")
    bench_command.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    bench_command.add_argument(
        "--workdir", help="folder for the export, databases and logs (default: a temporary one)"
    )
    bench_command.add_argument(
        "--reuse",
        action="store_true",
        help="reuse the export in --workdir if it was made for the same --customers and --seed",
    )
    bench_command.add_argument(
        "--repeat", type=int, default=3, help="runs per side, taking turns (default 3)"
    )
    bench_command.add_argument("--floor", help="path to floor.py (RAW DB AS_OF): the floor side")
    bench_command.add_argument("--dbt-project", help="folder of the dbt-duckdb project")
    bench_command.add_argument("--dbt", help="the dbt executable (with dbt-duckdb) to run it")
    bench_command.set_defaults(run=_bench)

    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
