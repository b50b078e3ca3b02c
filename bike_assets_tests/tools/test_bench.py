"""Tests of the benchmark: the measuring wrapper on tiny commands, the report on hand-made
numbers, and whole benchmarks with stand-in commands (never `make run`)."""

import json
import sys
from pathlib import Path

import pytest

from bike_assets.tools import bench as bench_module
from bike_assets.tools.bench import Run, format_report, measure
from bike_assets.tools.cli import main

PYTHON = sys.executable


def test_measure_sees_the_peak_memory_of_the_child(tmp_path: Path) -> None:
    run = measure([PYTHON, "-c", "x = bytearray(200_000_000)"], tmp_path, {}, tmp_path / "big")
    assert run.returncode == 0 and run.stderr_tail == ""
    assert run.peak_bytes >= 200_000_000  # the array alone is 0.2 GB
    assert run.peak_bytes < 400_000_000  # a python and the array, not twice the array
    assert 200_000_000 <= run.largest_bytes <= run.peak_bytes  # one process
    assert run.wall > 0


# A parent holding 0.15 GB starts a child that holds 0.15 GB too, both alive for a second.
FAMILY = """
import subprocess, sys, time
mine = bytearray(150_000_000)
child = subprocess.Popen([sys.executable, "-c",
                          "import time; x = bytearray(150_000_000); time.sleep(1.0)"])
child.wait()
"""


def test_measure_sums_the_memory_of_the_process_tree(tmp_path: Path) -> None:
    run = measure([PYTHON, "-c", FAMILY], tmp_path, {}, tmp_path / "family")
    assert run.returncode == 0
    assert run.peak_bytes >= 300_000_000  # both arrays at once
    assert 150_000_000 <= run.largest_bytes < 300_000_000  # one array and its python


def test_measure_keeps_the_exit_code_and_the_end_of_stderr(tmp_path: Path) -> None:
    code = "import sys; print('\\n'.join(f'line {i}' for i in range(30)), file=sys.stderr); exit(3)"
    run = measure([PYTHON, "-c", code], tmp_path, {}, tmp_path / "fails")
    assert run.returncode == 3
    assert run.stderr_tail == "\n".join(f"line {i}" for i in range(15, 30))  # the last 15


def test_measure_passes_the_environment_and_folder(tmp_path: Path) -> None:
    code = "import os, sys; sys.exit(os.environ['BIKE_X'] != 'y' or os.getcwd() != sys.argv[1])"
    run = measure([PYTHON, "-c", code, str(tmp_path)], tmp_path, {"BIKE_X": "y"}, tmp_path / "env")
    assert run.returncode == 0


def test_measure_of_a_missing_program_fails(tmp_path: Path) -> None:
    run = measure([str(tmp_path / "no-such-program")], tmp_path, {}, tmp_path / "missing")
    assert run.returncode == 127
    assert "no-such-program" in run.stderr_tail


def runs(
    walls: list[float], peaks_gb: list[float], largest_gb: list[float] | None = None
) -> list[Run]:
    largest_gb = largest_gb or peaks_gb
    return [
        Run(wall, int(gb * 1e9), int(one * 1e9), 0)
        for wall, gb, one in zip(walls, peaks_gb, largest_gb, strict=True)
    ]


def test_report_of_three_sides() -> None:
    report = format_report(
        {
            "bike_assets": runs([12.0, 10.0, 11.0], [1.5, 1.2, 1.3], [1.0, 0.9, 0.8]),
            "floor": runs([2.0, 2.5, 3.0], [0.4, 0.5, 0.6]),
            "dbt-duckdb": runs([4.0, 5.5, 5.0], [0.9, 0.8, 0.7]),
        }
    )
    # medians: 11 / 2.5 = 4.40 and 11 / 5 = 2.20; 2.5 / 5 = 0.50; 5 / 2.5 = 2.00
    assert report == (
        "| side | median wall (s) | min (s) | max (s) | median peak RSS, tree (GB) "
        "| largest process (GB) | x floor | x dbt-duckdb |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|\n"
        "| bike_assets | 11.00 | 10.00 | 12.00 | 1.30 | 0.90 | 4.40 | 2.20 |\n"
        "| floor | 2.50 | 2.00 | 3.00 | 0.50 | 0.50 | 1.00 | 0.50 |\n"
        "| dbt-duckdb | 5.00 | 4.00 | 5.50 | 0.80 | 0.80 | 2.00 | 1.00 |"
    )


def test_report_without_yardsticks_and_with_an_even_number_of_runs() -> None:
    report = format_report({"bike_assets": runs([3.0, 4.0], [1.0, 2.0])})
    # the median of two runs is their mean: 3.5 s, 1.5 GB
    assert report.splitlines()[-1] == "| bike_assets | 3.50 | 3.00 | 4.00 | 1.50 | 1.50 |"


def test_report_of_a_failed_side() -> None:
    report = format_report(
        {
            "bike_assets": runs([6.0], [1.0]),
            "floor": runs([2.0], [0.5]),
            "dbt-duckdb": [Run(1.0, 10**8, 10**8, 2, "Compilation Error\nin model x")],
        }
    )
    lines = report.splitlines()
    assert lines[2] == "| bike_assets | 6.00 | 6.00 | 6.00 | 1.00 | 1.00 | 3.00 | - |"
    assert lines[4] == "| dbt-duckdb | FAILED (exit 2) |  |  |  |  |  |  |"
    assert report.endswith(
        "dbt-duckdb failed with exit code 2; end of its output:\n"
        "```\nCompilation Error\nin model x\n```"
    )


# Stand-ins for the sides: each writes what it was given into a file, for the test to read.
RECORD = """
import json, os, sys
from pathlib import Path
seen = {"argv": sys.argv[1:], "cwd": os.getcwd(), "env": {k: v for k, v in os.environ.items()
        if k.startswith(("BIKE_", "DAGSTER_HOME", "DBT_"))},
        "dagster_yaml": Path(os.environ["DAGSTER_HOME"], "dagster.yaml").is_file()}
with open(os.environ["RECORD_TO"], "a") as out:
    out.write(json.dumps(seen) + "\\n")
"""


def test_bench_runs_the_sides_in_turns_and_reuses_the_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    record = tmp_path / "record.jsonl"
    monkeypatch.setenv("RECORD_TO", str(record))
    monkeypatch.setattr(bench_module, "MAIN_COMMAND", [PYTHON, "-c", RECORD, "main"])
    floor = tmp_path / "floor.py"
    floor.write_text(RECORD)
    project = tmp_path / "dbt_project"
    project.mkdir()
    (project / "profiles.yml").write_text("bike_dbt: {}\n")
    project.chmod(0o555)  # as in a read-only checkout: the copy must be writable all the same
    dbt = tmp_path / "dbt"
    dbt.write_text(f"#!{PYTHON}\n{RECORD}")
    dbt.chmod(0o755)
    work = tmp_path / "work"
    args = ["bench", "--customers", "30", "--workdir", str(work), "--repeat", "2"]
    args += ["--floor", str(floor), "--dbt-project", str(project), "--dbt", str(dbt)]
    main(args)

    report = capsys.readouterr().out
    assert report.startswith("30 customers, ")
    assert "medians of 2 runs per side" in report
    for side in ("bike_assets", "floor", "dbt-duckdb"):
        assert f"\n| {side} | " in report
    seen = [json.loads(line) for line in record.read_text().splitlines()]
    assert [s["argv"][:1] for s in seen] == [["main"], [str(work / "raw")], ["run"]] * 2
    raw = str(work / "raw")
    main_env = seen[0]["env"]
    assert main_env["BIKE_RAW_DIR"] == raw and main_env["BIKE_AS_OF_DATE"] == "2025-12-31"
    assert main_env["BIKE_DUCKDB_PATH"] == str(work / "bike_assets.duckdb")
    assert seen[0]["cwd"] == str(bench_module.REPO_ROOT)
    # a fresh DAGSTER_HOME each run, holding a copy of dagster.yaml
    assert seen[0]["env"]["DAGSTER_HOME"] != seen[3]["env"]["DAGSTER_HOME"]
    assert all(s["dagster_yaml"] for s in seen)
    assert seen[1]["argv"] == [raw, str(work / "floor.duckdb"), "2025-12-31"]
    assert seen[2]["argv"][1:] == [
        "--profiles-dir", ".", "--vars", json.dumps({"raw_dir": raw, "as_of": "2025-12-31"})
    ]  # fmt: skip
    assert seen[2]["cwd"] == str(work / "dbt_project")
    assert (work / "dbt_project" / "profiles.yml").read_text() == "bike_dbt: {}\n"
    assert (work / "dbt_project").stat().st_mode & 0o200
    assert seen[2]["env"]["BIKE_DB"] == str(work / "dbt.duckdb")
    assert seen[2]["env"]["DBT_SEND_ANONYMOUS_USAGE_STATS"] == "false"

    # --reuse keeps the export of the same size: its files are not written again
    stamp = (work / "raw" / "orders.csv").stat().st_mtime_ns
    main(["bench", "--customers", "30", "--workdir", str(work), "--repeat", "1", "--reuse"])
    assert (work / "raw" / "orders.csv").stat().st_mtime_ns == stamp
    assert "Reusing the export" in capsys.readouterr().err


def test_bench_exits_1_when_a_side_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    failing = [PYTHON, "-c", "import sys; sys.exit('no warehouse today')"]
    monkeypatch.setattr(bench_module, "MAIN_COMMAND", failing)
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--customers", "20", "--workdir", str(tmp_path), "--repeat", "3"])
    assert exit_.value.code == 1
    report = capsys.readouterr().out
    assert "| bike_assets | FAILED (exit 1) |" in report
    assert "```\nno warehouse today\n```" in report
    # a side that failed is not run again
    assert [path.name for path in (tmp_path / "logs").glob("*.err")] == ["bike_assets-1.err"]
