"""Tests of the benchmark: the plain baseline's figures by hand, the comparison, a smoke run."""

import hashlib
import hmac
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from bike_assets.bench import MODELS, Measure, _format, measure, run_baseline, same_tables
from bike_assets.cli import main
from bike_assets_tests.conftest import TINY_EXPORT, write_export


def _hmac(value: str) -> str:
    return hmac.new(b"test-key", value.encode(), hashlib.sha256).hexdigest()


@pytest.fixture
def baseline(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    job = {
        "raw_dir": str(write_export(tmp_path / "raw", TINY_EXPORT)),
        "database": str(tmp_path / "baseline.duckdb"),
        "as_of": "2024-12-31",
        "pii_key": "test-key",
        "memory_limit": "1GB",
        "threads": 2,
    }
    assert set(run_baseline(job)) == set(MODELS.values())
    with duckdb.connect(job["database"], read_only=True) as conn:
        yield conn


def test_baseline_orders_enriched(baseline: duckdb.DuckDBPyConnection) -> None:
    rows = baseline.execute(
        "select order_id, store_name, order_status_label, delivery_status, days_to_ship, "
        "total_items, unique_products, total_order_net_price "
        "from intermediate.orders_enriched order by order_id"
    ).fetchall()
    assert rows == [
        # 0.15 * 1 * 0.90 = 0.135 twice: 0.27; shipped 01-02 <= required 01-03, 1 day
        (1, "Santa Cruz Bikes", "Completed", "On Time", 1, 2, 2, Decimal("0.27")),
        # 100.00 * 2 * 0.95 = 190.00; shipped 02-05 > required 02-03, 4 days
        (2, "Baldwin Bikes", "Completed", "Late", 4, 2, 1, Decimal("190.00")),
        # 599.99 * 0.80 = 479.992 -> 479.99; not shipped
        (3, "Baldwin Bikes", "Pending", "Pending", None, 1, 1, Decimal("479.99")),
    ]


def test_baseline_customers_enriched(baseline: duckdb.DuckDBPyConnection) -> None:
    rows = baseline.execute(
        "select customer_id, gender, email_hash, region, store_id, store_name, total_orders, "
        "total_spent, avg_order_value, first_order_date, last_order_date, "
        "total_items_purchased, days_since_last_order, customer_segment, ltv_segment "
        "from marts.customers_enriched order by customer_id"
    ).fetchall()
    assert rows == [
        # one order at each store: the tie goes to store 2, of the latest order (02-01);
        # 0.27 + 190.00 = 190.27, / 2 = 95.135 -> 95.14; 2024-02-01 is day 32 of 366: 334 days
        (1, "female", _hmac("debra.burks@yahoo.com"), "Northeast", 2, "Baldwin Bikes", 2,
         Decimal("190.27"), Decimal("95.14"), date(2024, 1, 1), date(2024, 2, 1), 4, 334,
         "Regular", "Bronze"),
        # Daryl is not in the name list; 'ny' is NY; 2024-03-01 is day 31 + 29 + 1 = 61: 305
        (2, "unknown", _hmac("daryl.spence@aol.com"), "Northeast", 2, "Baldwin Bikes", 1,
         Decimal("479.99"), Decimal("479.99"), date(2024, 3, 1), date(2024, 3, 1), 1, 305,
         "New", "Bronze"),
        (3, "unknown", _hmac("zyx@msn.com"), "South", None, None, None, None, None, None,
         None, None, None, "New", None),
    ]  # fmt: skip
    phones = baseline.execute(
        "select phone_hash from staging.stg_customers order by customer_id"
    ).fetchall()
    assert phones == [(None,), (_hmac("9163816003"),), (None,)]


def test_baseline_region_segment_summary(baseline: duckdb.DuckDBPyConnection) -> None:
    rows = baseline.execute("from marts.region_segment_summary").fetchall()
    # customers 1 and 2: (190.27 + 479.99) / 2 = 335.13; (2 + 1) / 2 = 1.50; 3 has no order
    assert rows == [("Northeast", "Bronze", 2, Decimal("335.13"), Decimal("1.50"))]


def test_same_tables_sees_one_changed_value(tmp_path: Path) -> None:
    for name, amount in (("a", "1.00"), ("b", "1.00"), ("c", "1.01")):
        with duckdb.connect(str(tmp_path / f"{name}.duckdb")) as conn:
            conn.execute(f"create table t as select * from (values (1, {amount}), (2, 3.00)) v")
    first, second, third = (str(tmp_path / f"{name}.duckdb") for name in "abc")
    assert same_tables(first, second, ["t"]) == {"t": True}
    assert same_tables(first, third, ["t"]) == {"t": False}


def test_bench_command_runs_both_sides_and_they_agree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["bench", "--customers", "200", "--seed", "3", "--workdir", str(tmp_path)])
    report = capsys.readouterr().out
    assert report.startswith("200 customers, ")
    for step in MODELS.values():
        assert f"  {step} " in report
    assert "same four tables in both warehouses: yes" in report
    # --reuse keeps the export: the files are not written again
    stamp = (tmp_path / "raw" / "orders.csv").stat().st_mtime_ns
    main(["bench", "--customers", "200", "--seed", "3", "--workdir", str(tmp_path), "--reuse"])
    assert (tmp_path / "raw" / "orders.csv").stat().st_mtime_ns == stamp
    assert "Reusing the export" in capsys.readouterr().err


def test_a_failed_side_is_reported_with_its_reason(tmp_path: Path) -> None:
    raw_dir = tmp_path / "raw"
    write_export(
        raw_dir, {name: rows for name, rows in TINY_EXPORT.items() if name != "stores.csv"}
    )
    job = {
        "raw_dir": str(raw_dir),
        "database": str(tmp_path / "dagster.duckdb"),
        "as_of": "2024-12-31",
        "pii_key": "test-key",
        "memory_limit": "1GB",
        "threads": 2,
    }
    failed = measure("dagster", job, tmp_path)
    assert failed.steps == {}
    assert "step staging" in failed.error and "stores.csv" in failed.error


def test_the_report_says_which_side_failed() -> None:
    rows = {"customers.csv": 200, "orders.csv": 600, "order_items.csv": 1800}
    job = {"memory_limit": "1GB", "threads": 2}
    steps = dict.fromkeys(MODELS.values(), 0.5)
    measures = {
        "baseline": Measure(wall=3.0, cpu=4.0, peak_bytes=2**29, run=2.0, steps=steps),
        "dagster": Measure(wall=12.4, cpu=9.0, peak_bytes=2**30, run=0.0, steps={}, error="boom"),
    }
    report = _format(rows, 2_000_000, job, measures, {}, repeat=1)
    assert "  staging                        0.50 s         - s" in report
    # the failed side's figures are shown, without a ratio: its run did not finish
    assert "wall (whole process)             3.00 s     12.40 s\n" in report
    assert "peak memory (RSS)                0.50 GB     1.00 GB\n" in report  # 2**29, 2**30
    assert "the dagster side FAILED after 12 s: boom" in report
    assert "same four tables" not in report
