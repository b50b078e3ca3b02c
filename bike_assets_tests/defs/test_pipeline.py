"""The asset graph end to end on generated and bundled exports, cross-checked independently."""

import hashlib
import hmac
import re
from collections import defaultdict
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from bike_assets.lib.reference import REFERENCE_DIR
from bike_assets.tools import cli
from bike_assets.tools.generate import generate_export
from bike_assets_tests.conftest import PUBLISHED_TABLES, Pipeline, check_results, query

AS_OF = date(2025, 6, 30)  # the generated orders run to 2025-12-31: later ones are left out
KEY = "pipeline-test-key"
CENT = Decimal("0.01")
ROOT = Path(__file__).resolve().parents[2]
SAMPLE_DIR = ROOT / "data" / "raw"

# The columns of tables.md, in its order, typed from the spec.
SPEC_COLUMNS = {
    "staging.stg_customers": [
        "customer_id", "first_name", "last_name", "email_hash", "phone_hash", "city", "state",
        "zip_code", "region", "gender",
    ],
    "intermediate.orders_enriched": [
        "order_id", "customer_id", "store_id", "store_name", "staff_id", "order_status",
        "order_status_label", "order_date", "required_date", "shipped_date", "delivery_status",
        "days_to_ship", "total_items", "unique_products", "total_order_net_price",
    ],
    "marts.customers_enriched": [
        "customer_id", "gender", "email_hash", "city", "state", "region", "store_id",
        "store_name", "total_orders", "total_spent", "avg_order_value", "first_order_date",
        "last_order_date", "total_items_purchased", "days_since_last_order", "customer_segment",
        "ltv_segment", "as_of_date",
    ],
    "marts.region_segment_summary": [
        "region", "customer_segment", "num_customers", "avg_ltv", "avg_orders",
    ],
    "marts.customer_segment_history": [
        "customer_id", "customer_segment", "ltv_segment", "valid_from", "valid_to",
        "total_orders", "total_spent", "as_of_date",
    ],
}  # fmt: skip


def half_up(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def read_csv(path: Path) -> pd.DataFrame:
    """A file of the export as text; NULL and empty fields are NA."""
    return pd.read_csv(
        path, dtype=str, keep_default_na=False, na_values=["NULL", ""], encoding="utf-8-sig"
    )


def segment(orders: int, spent: Decimal) -> str:
    if orders >= 10 and spent >= 5000:
        return "VIP"
    if orders >= 5 and spent >= 2000:
        return "Loyal"
    return "Regular" if orders >= 2 else "New"


def tier(spent: Decimal) -> str:
    if spent >= 10000:
        return "Platinum"
    if spent >= 5000:
        return "Gold"
    return "Silver" if spent >= 1000 else "Bronze"


def independent_marts(raw_dir: Path, as_of: date) -> tuple[dict[int, dict], list[tuple], dict]:
    """customers_enriched, region_segment_summary and the orders' net prices, from the CSVs
    with pandas and Python's decimal module, following tables.md (of the package, only its
    census reference file is read)."""
    items = read_csv(raw_dir / "order_items.csv").drop_duplicates()
    items = items[items["quantity"].astype(int) > 0]
    net = defaultdict(Decimal)
    units = defaultdict(int)
    for line in items.itertuples():
        quantity = int(line.quantity)
        net[int(line.order_id)] += (
            Decimal(line.list_price) * quantity * (1 - Decimal(line.discount))
        )
        units[int(line.order_id)] += quantity

    orders = read_csv(raw_dir / "orders.csv")
    order_net = {int(o): half_up(net[int(o)]) for o in orders["order_id"]}
    orders = orders[orders["order_date"] <= as_of.isoformat()]
    by_customer = defaultdict(list)
    for o in orders.itertuples():
        order_date = date.fromisoformat(o.order_date)
        by_customer[int(o.customer_id)].append((order_date, int(o.store_id), int(o.order_id)))

    regions = read_csv(REFERENCE_DIR / "us_census_regions.csv")
    region_of = dict(zip(regions["state"], regions["region"], strict=True))
    customers = {}
    for c in read_csv(raw_dir / "customers.csv").itertuples():
        placed = by_customer[int(c.customer_id)]
        row = {
            "email_hash": hmac.new(
                KEY.encode(), c.email.strip().lower().encode(), hashlib.sha256
            ).hexdigest(),
            "region": region_of.get(c.state.strip().upper(), "Unknown"),
            "customer_segment": "New",
        }
        row |= dict.fromkeys(
            [
                "store_id",
                "total_orders",
                "total_spent",
                "avg_order_value",
                "first_order_date",
                "last_order_date",
                "total_items_purchased",
                "days_since_last_order",
                "ltv_segment",
            ]
        )
        if placed:
            spent = sum(order_net[order_id] for _, _, order_id in placed)
            count = len(placed)
            per_store = defaultdict(list)
            for order_date, store_id, _ in placed:
                per_store[store_id].append(order_date)
            store = max(per_store, key=lambda s: (len(per_store[s]), max(per_store[s]), -s))
            last = max(d for d, _, _ in placed)
            row |= {
                "store_id": store,
                "total_orders": count,
                "total_spent": spent,
                "avg_order_value": half_up(spent / count),
                "first_order_date": min(d for d, _, _ in placed),
                "last_order_date": last,
                "total_items_purchased": sum(units[order_id] for _, _, order_id in placed),
                "days_since_last_order": (as_of - last).days,
                "customer_segment": segment(count, spent),
                "ltv_segment": tier(spent),
            }
        customers[int(c.customer_id)] = row

    groups = defaultdict(list)
    for row in customers.values():
        if row["total_orders"]:
            groups[(row["region"], row["ltv_segment"])].append(row)
    summary = [
        (
            region,
            ltv,
            len(rows),
            half_up(sum(r["total_spent"] for r in rows) / len(rows)),
            half_up(Decimal(sum(r["total_orders"] for r in rows)) / len(rows)),
        )
        for (region, ltv), rows in groups.items()
    ]
    summary.sort(key=lambda r: r[3], reverse=True)
    summary.sort(key=lambda r: r[0])  # stable: region A-Z, then avg_ltv highest first
    return customers, summary, order_net


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pipeline, object]:
    folder = tmp_path_factory.mktemp("generated")
    generate_export(folder / "raw", customers=300, seed=3)
    pipeline = Pipeline(folder / "warehouse.duckdb", folder / "raw", {"BIKE_PII_KEY": KEY})
    return pipeline, pipeline.run(as_of=AS_OF.isoformat())


def test_run_succeeds_and_every_check_passes(generated) -> None:
    _, result = generated
    assert result.success
    evaluations = check_results(result)
    assert len(evaluations) >= 30
    assert [name for name, e in evaluations.items() if not e.passed] == []
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert set(SPEC_COLUMNS) <= {key.replace("/", ".") for key in materialized}


def test_spec_tables_have_the_spec_columns_in_order(generated) -> None:
    pipeline, _ = generated
    for table, columns in SPEC_COLUMNS.items():
        schema, name = table.split(".")
        actual = query(
            pipeline,
            "select column_name from information_schema.columns "
            f"where table_schema = '{schema}' and table_name = '{name}' order by ordinal_position",
        )
        assert [row["column_name"] for row in actual] == columns, table


def test_marts_match_an_independent_computation(generated) -> None:
    pipeline, _ = generated
    customers, summary, order_net = independent_marts(pipeline.raw_dir, AS_OF)

    rows = query(pipeline, "select * from marts.customers_enriched order by customer_id")
    assert len(rows) == len(customers) == 300
    for row in rows:
        expected = customers[row["customer_id"]]
        actual = {column: row[column] for column in expected}
        assert actual == expected, row["customer_id"]
        assert row["as_of_date"] == AS_OF
    segments = {row["customer_segment"] for row in rows}
    assert segments == {"VIP", "Loyal", "Regular", "New"}  # the comparison covers every rule

    assert [
        tuple(row.values()) for row in query(pipeline, "from marts.region_segment_summary")
    ] == summary

    orders = query(
        pipeline, "select order_id, total_order_net_price from intermediate.orders_enriched"
    )
    assert {row["order_id"]: row["total_order_net_price"] for row in orders} == order_net


def test_bundled_sample_materializes_with_every_segment(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path / "warehouse.duckdb", SAMPLE_DIR, {"BIKE_PII_KEY": KEY})
    result = pipeline.run(as_of="2025-12-31")
    assert result.success
    assert [name for name, e in check_results(result).items() if not e.passed] == []
    rows = query(
        pipeline,
        "select distinct customer_segment, ltv_segment, region from marts.customers_enriched",
    )
    assert {r["customer_segment"] for r in rows} == {"VIP", "Loyal", "Regular", "New"}
    assert {r["ltv_segment"] for r in rows} - {None} == {"Platinum", "Gold", "Silver", "Bronze"}
    assert len({r["region"] for r in rows}) >= 3
    (customers,) = query(pipeline, "select count(*) as n from marts.customers_enriched")
    assert customers["n"] == 3000  # README: 3,000 customers


def test_cli_generate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    cli.main(["generate", "--customers", "25", "--seed", "5", "--out", str(out)])
    printed = capsys.readouterr().out.splitlines()
    files = sorted(path.name for path in out.iterdir())
    assert files == [
        "customers.csv",
        "order_items.csv",
        "orders.csv",
        "products.csv",
        "staffs.csv",
        "stores.csv",
    ]
    # One line per file, with its row count (lines minus the header).
    rows = {name: (out / name).read_bytes().count(b"\r\n") - 1 for name in files}
    assert set(printed) == {f"{out}/{name}: {count} rows" for name, count in rows.items()}
    assert f"{out}/customers.csv: 25 rows" in printed

    reference = tmp_path / "reference"
    generate_export(reference, customers=25, seed=5)
    for name in files:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name


def test_cli_generate_default_seed_and_required_arguments(tmp_path: Path) -> None:
    cli.main(["generate", "--customers", "5", "--out", str(tmp_path / "default")])
    generate_export(tmp_path / "seed42", customers=5, seed=42)
    for name in ("customers.csv", "orders.csv", "order_items.csv"):
        default = (tmp_path / "default" / name).read_bytes()
        assert default == (tmp_path / "seed42" / name).read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["generate", "--out", str(tmp_path / "missing")])
    assert exit_info.value.code == 2


# --- The code location as the UI shows it -----------------------------------------------------


def test_asset_keys_are_raw_files_and_schema_table(tiny_pipeline: Pipeline) -> None:
    defs = tiny_pipeline.definitions()
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    raw = {"raw/customers", "raw/orders", "raw/order_items", "raw/stores"}
    tables = {name.replace(".", "/") for name in PUBLISHED_TABLES}
    assert keys == raw | tables
    for spec in defs.resolve_all_asset_specs():
        schema = spec.key.path[0]
        assert len(spec.key.path) == 2 and spec.group_name == schema, spec.key
        if schema != "raw":
            assert spec.metadata["dagster/table_name"] == ".".join(spec.key.path)


# `import dagster._core...`, `from dagster._utils import ...`, `module: dagster._core...`
PRIVATE_DAGSTER = re.compile(r"\bdagster\._")


def test_nothing_uses_dagster_private_modules() -> None:
    files = [
        path
        for path in sorted((ROOT / "bike_assets").rglob("*"))
        if path.suffix in {".py", ".yaml", ".yml", ".toml", ".sql"}
    ]
    files.append(ROOT / "dagster_home" / "dagster.yaml")
    assert len(files) > 20
    uses = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if PRIVATE_DAGSTER.search(line)
    ]
    assert uses == []


# --- A published version of an older contract --------------------------------------------------


def test_a_run_replaces_tables_published_under_an_older_contract(tiny_pipeline: Pipeline) -> None:
    # The previous release published stg_customers with a column the contract no longer has
    # and customers_enriched.total_orders as INTEGER: the new version is checked, not those.
    assert tiny_pipeline.run().success
    with duckdb.connect(str(tiny_pipeline.warehouse)) as conn:
        conn.execute("alter table staging.stg_customers add column email varchar")
        conn.execute("alter table marts.customers_enriched alter total_orders type integer")
    result = tiny_pipeline.run()
    failed = [name for name, e in check_results(result).items() if not e.passed]
    assert result.success, failed
    assert failed == []
    columns = query(
        tiny_pipeline,
        "select table_name, column_name, data_type from information_schema.columns "
        "where (table_name = 'stg_customers' and column_name = 'email') "
        "or (table_name = 'customers_enriched' and column_name = 'total_orders')",
    )
    assert columns == [
        {"table_name": "customers_enriched", "column_name": "total_orders", "data_type": "BIGINT"}
    ]
