"""The benchmark: the README's main command as a whole process, beside the yardsticks.

Sides, run in turns on the same generated export, each run a separate process tree:
- `bike_assets`: MAIN_COMMAND in the repository root, on a fresh DAGSTER_HOME each run;
- `floor` (with --floor): `python floor.py RAW DB AS_OF`, plain DuckDB SQL;
- `dbt-duckdb` (with --dbt-project and --dbt): `dbt run` in a fresh copy of the dbt project.
Each side's database is deleted before each run, so every run builds from scratch.
"""

import json
import os
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

MAIN_COMMAND = ["make", "run"]  # the README's main command, run in REPO_ROOT
REPO_ROOT = Path(__file__).resolve().parents[2]
# The generated exports' orders are dated 2022-2025: as of their last day, every order counts.
AS_OF = "2025-12-31"
GB = 1e9  # bytes
TAIL_LINES = 15

# Runs argv[2:] as a child, then writes its wall time and peak memory to the file argv[1]: the
# peak of the summed RSS of the child's whole process tree (the main command's daemon, code
# servers and run process included), sampled every SAMPLE_SECONDS, and the largest RSS of one
# process (sampled, or ru_maxrss of a waited-for descendant, whichever is larger).
SAMPLE_SECONDS = 0.05
_WRAPPER = f"""
import json, resource, subprocess, sys, time
import psutil

def tree_rss(root):
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return []
    sizes = []
    for process in processes:
        try:
            sizes.append(process.memory_info().rss)
        except psutil.Error:
            pass
    return sizes

start = time.perf_counter()
tree = largest = 0
try:
    child = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL)
except OSError as error:
    print(error, file=sys.stderr)
    code = 127
else:
    root = psutil.Process(child.pid)
    while child.poll() is None:
        sizes = tree_rss(root)
        tree, largest = max(tree, sum(sizes)), max([largest, *sizes])
        time.sleep({SAMPLE_SECONDS})
    code = child.returncode
wall = time.perf_counter() - start
waited = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB, bytes on macOS
waited *= 1 if sys.platform == "darwin" else 1024
with open(sys.argv[1], "w") as out:
    json.dump({{"wall": wall, "peak": max(tree, waited), "largest": max(largest, waited),
               "code": code}}, out)
"""


@dataclass(frozen=True)
class Run:
    """One measured run: wall time in seconds, peak memory in bytes (the summed RSS of its
    process tree, and the largest RSS of one of its processes), exit code, and when it failed
    the last TAIL_LINES lines of its stderr (of its stdout if stderr is empty, as with dbt)."""

    wall: float
    peak_bytes: int
    largest_bytes: int
    returncode: int
    stderr_tail: str = ""

    @property
    def failed(self) -> bool:
        return self.returncode != 0


@dataclass(frozen=True)
class Side:
    """A command to measure: argv, working folder, extra environment, the database it writes,
    and a folder to copy afresh into the working folder before each run."""

    name: str
    command: list[str]
    cwd: Path
    env: dict[str, str]
    database: Path
    template: Path | None = None


def measure(command: Sequence[str], cwd: Path, env: Mapping[str, str], logs: Path) -> Run:
    """Run command as a whole process tree; its stdout and stderr go to logs.out and logs.err."""
    result = logs.with_suffix(".json")
    result.unlink(missing_ok=True)
    with logs.with_suffix(".out").open("wb") as out, logs.with_suffix(".err").open("wb") as err:
        wrapper = [sys.executable, "-c", _WRAPPER, str(result), *command]
        done = subprocess.run(wrapper, cwd=cwd, env={**os.environ, **env}, stdout=out, stderr=err)
    tail = _tail(logs.with_suffix(".err")) or _tail(logs.with_suffix(".out"))
    if not result.is_file():  # the wrapper itself failed
        return Run(0.0, 0, 0, done.returncode or 1, tail)
    figures = json.loads(result.read_text())
    code = figures["code"]
    return Run(figures["wall"], figures["peak"], figures["largest"], code, tail if code else "")


def format_report(runs: Mapping[str, Sequence[Run]]) -> str:
    """A markdown table, one row per side: median, min and max wall (s), median peak memory
    (GB: the process tree's summed RSS, and the largest process's),
    and the ratio of median walls to the floor and to dbt-duckdb when those sides are there.
    A side with a failed run shows its exit code, and the end of its stderr under the table."""
    bases = [name for name in ("floor", "dbt-duckdb") if name in runs]
    header = ["side", "median wall (s)", "min (s)", "max (s)"]
    header += ["median peak RSS, tree (GB)", "largest process (GB)"]
    header += [f"x {name}" for name in bases]
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    failures = []
    for name, done in runs.items():
        failed = next((run for run in done if run.failed), None)
        if failed:
            cells = [f"FAILED (exit {failed.returncode})"] + [""] * (len(header) - 2)
            failures += [f"\n{name} failed with exit code {failed.returncode}; end of its output:"]
            failures += ["```", failed.stderr_tail.rstrip(), "```"]
        else:
            walls = [run.wall for run in done]
            cells = [f"{_median_wall(done):.2f}", f"{min(walls):.2f}", f"{max(walls):.2f}"]
            cells.append(f"{statistics.median(run.peak_bytes for run in done) / GB:.2f}")
            cells.append(f"{statistics.median(run.largest_bytes for run in done) / GB:.2f}")
            cells += [_ratio(done, runs[base]) for base in bases]
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return "\n".join(lines + failures)


def bench(
    customers: int,
    seed: int = 42,
    workdir: Path | None = None,
    reuse: bool = False,
    repeat: int = 3,
    floor: Path | None = None,
    dbt_project: Path | None = None,
    dbt: str | None = None,
) -> tuple[str, bool]:
    """Generate the export, run the sides `repeat` times in turns; return (report, all passed)."""
    with tempfile.TemporaryDirectory(prefix="bike-bench-") as scratch:
        folder = Path(workdir or scratch).resolve()
        (folder / "logs").mkdir(parents=True, exist_ok=True)
        raw = folder / "raw"
        rows = _export(raw, customers, seed, reuse)
        sides = _sides(folder, raw, floor, dbt_project, dbt)
        runs: dict[str, list[Run]] = {side.name: [] for side in sides}
        for turn in range(1, repeat + 1):
            for side in sides:
                if any(run.failed for run in runs[side.name]):
                    continue  # it failed once: the report says why
                runs[side.name].append(_run_side(side, folder / "logs" / f"{side.name}-{turn}"))
                last = runs[side.name][-1]
                print(f"{side.name} {turn}/{repeat}: {last.wall:.1f} s", file=sys.stderr)
        csv_mb = sum(path.stat().st_size for path in raw.glob("*.csv")) / 1e6
        title = (
            f"{rows['customers.csv']:,} customers, {rows['orders.csv']:,} orders, "
            f"{rows['order_items.csv']:,} order lines ({csv_mb:,.0f} MB of CSV); "
            f"{os.cpu_count()} cores; "
            + (f"medians of {repeat} runs per side\n\n" if repeat > 1 else "1 run per side\n\n")
        )
        ok = not any(run.failed for done in runs.values() for run in done)
        return title + format_report(runs), ok


def _sides(
    folder: Path, raw: Path, floor: Path | None, dbt_project: Path | None, dbt: str | None
) -> list[Side]:
    """The commands to measure; the bike_assets side's DAGSTER_HOME is set per run."""
    env = {"BIKE_RAW_DIR": str(raw), "BIKE_AS_OF_DATE": AS_OF}
    db = folder / "bike_assets.duckdb"
    sides = [Side("bike_assets", MAIN_COMMAND, REPO_ROOT, {**env, "BIKE_DUCKDB_PATH": str(db)}, db)]
    if floor:
        db = folder / "floor.duckdb"
        command = [sys.executable, str(Path(floor).resolve()), str(raw), str(db), AS_OF]
        sides.append(Side("floor", command, folder, {}, db))
    if dbt_project and dbt:
        db = folder / "dbt.duckdb"
        variables = json.dumps({"raw_dir": str(raw), "as_of": AS_OF})
        command = [dbt, "run", "--profiles-dir", ".", "--vars", variables]
        dbt_env = {"DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "BIKE_DB": str(db)}
        copy = folder / "dbt_project"
        sides.append(Side("dbt-duckdb", command, copy, dbt_env, db, Path(dbt_project).resolve()))
    return sides


def _run_side(side: Side, logs: Path) -> Run:
    """One measured run of side from scratch: no database, a fresh DAGSTER_HOME and copy."""
    for path in (side.database, side.database.with_name(side.database.name + ".wal")):
        path.unlink(missing_ok=True)
    if side.template:
        shutil.rmtree(side.cwd, ignore_errors=True)
        shutil.copytree(side.template, side.cwd)
        for path in [side.cwd, *side.cwd.rglob("*")]:  # dbt writes target/ and logs/ in it
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    with tempfile.TemporaryDirectory(prefix="bike-bench-dagster-home-") as home:
        shutil.copy(REPO_ROOT / "dagster_home" / "dagster.yaml", home)
        return measure(side.command, side.cwd, {**side.env, "DAGSTER_HOME": home}, logs)


def _export(raw: Path, customers: int, seed: int, reuse: bool) -> dict[str, int]:
    """Generate the export into raw (or reuse it, made for the same customers and seed)."""
    from bike_assets.tools.generate import generate_export

    marker, wanted = raw / "bench.json", {"customers": customers, "seed": seed}
    if reuse and marker.is_file():
        made = json.loads(marker.read_text())
        if {key: made.get(key) for key in wanted} == wanted:
            print(f"Reusing the export in {raw}", file=sys.stderr)
            return made["rows"]
    print(f"Generating {customers:,} customers (seed {seed}) into {raw}", file=sys.stderr)
    marker.unlink(missing_ok=True)
    rows = generate_export(raw, customers, seed=seed)
    marker.write_text(json.dumps({**wanted, "rows": rows}))
    return rows


def _ratio(runs: Sequence[Run], base: Sequence[Run]) -> str:
    """Median wall of runs over median wall of base, or '-' when base failed."""
    if any(run.failed for run in base):
        return "-"
    return f"{_median_wall(runs) / _median_wall(base):.2f}"


def _median_wall(runs: Sequence[Run]) -> float:
    return statistics.median(run.wall for run in runs)  # seconds


def _tail(path: Path) -> str:
    """The last TAIL_LINES lines of a log file."""
    return "\n".join(path.read_text(errors="replace").splitlines()[-TAIL_LINES:])
