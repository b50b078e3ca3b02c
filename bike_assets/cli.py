"""The `bike-assets` console command: generate sample exports (and benchmark the pipeline)."""

import argparse
from pathlib import Path

from bike_assets.generate import generate_export


def _generate(args: argparse.Namespace) -> None:
    counts = generate_export(Path(args.out), customers=args.customers, seed=args.seed)
    for name, rows in counts.items():
        print(f"{args.out}/{name}: {rows} rows")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bike-assets", description=__doc__)
    commands = parser.add_subparsers(required=True)

    generate = commands.add_parser("generate", help="write a realistic BikeStores export")
    generate.add_argument("--customers", type=int, required=True, help="how many customers")
    generate.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    generate.add_argument("--out", required=True, help="folder to write the CSV files to")
    generate.set_defaults(run=_generate)

    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
