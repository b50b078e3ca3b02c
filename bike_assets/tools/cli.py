"""The `bike-assets` console command: generate sample exports, and benchmark the main command."""

import argparse
from pathlib import Path

from bike_assets.tools.bench import AS_OF, MAIN_COMMAND, bench
from bike_assets.tools.generate import generate_export


def _generate(args: argparse.Namespace) -> None:
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bike-assets", description=__doc__)
    commands = parser.add_subparsers(required=True)

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
        "the sides taking turns; prints a markdown table of wall times, peak memory (RSS of "
        "the process tree) and ratios of medians. Exits 1 if a side failed.",
    )
    bench_command.add_argument("--customers", type=int, required=True, help="how many customers")
    bench_command.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    bench_command.add_argument(
        "--workdir", help="folder for the export, databases and logs (default: a temporary one)"
    )
    bench_command.add_argument(
        "--reuse", action="store_true", help="reuse the export in --workdir if it has the same size"
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
