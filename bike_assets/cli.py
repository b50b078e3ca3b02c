"""The `bike-assets` console command: generate sample exports (and benchmark the pipeline)."""

import argparse
from pathlib import Path

from bike_assets.bench import bench
from bike_assets.generate import generate_export


def _generate(args: argparse.Namespace) -> None:
    counts = generate_export(Path(args.out), customers=args.customers, seed=args.seed)
    for name, rows in counts.items():
        print(f"{args.out}/{name}: {rows} rows")


def _bench(args: argparse.Namespace) -> None:
    workdir = Path(args.workdir) if args.workdir else None
    table, measures, same = bench(
        args.customers, args.seed, workdir, args.reuse, args.memory_limit, args.repeat
    )
    print(table)
    if any(measure.error for measure in measures.values()) or not all(same.values()):
        raise SystemExit(1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bike-assets", description=__doc__)
    commands = parser.add_subparsers(required=True)

    generate = commands.add_parser("generate", help="write a realistic BikeStores export")
    generate.add_argument("--customers", type=int, required=True, help="how many customers")
    generate.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    generate.add_argument("--out", required=True, help="folder to write the CSV files to")
    generate.set_defaults(run=_generate)

    bench_command = commands.add_parser(
        "bench",
        help="time the Dagster materialization against a plain DuckDB SQL script",
        description="Generates an export, then runs a plain DuckDB SQL script and the "
        "daily_refresh job on it, each in its own process, and prints wall time, peak memory "
        "and per-asset time for each, their ratio, and whether both built the same tables.",
    )
    bench_command.add_argument("--customers", type=int, required=True, help="how many customers")
    bench_command.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    bench_command.add_argument(
        "--workdir", help="folder for the export and both warehouses (default: a temporary one)"
    )
    bench_command.add_argument(
        "--reuse", action="store_true", help="reuse the export in --workdir if it has the same size"
    )
    bench_command.add_argument(
        "--memory-limit",
        help="DuckDB memory_limit of both sides (default BIKE_DUCKDB_MEMORY_LIMIT)",
    )
    bench_command.add_argument(
        "--repeat", type=int, default=1, help="runs per side, the fastest kept (default 1)"
    )
    bench_command.set_defaults(run=_bench)

    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
