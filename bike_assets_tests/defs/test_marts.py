"""orders_enriched and the marts on a hand-made export, against figures computed by hand."""

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from bike_assets.defs.resources import BusinessCalendar, SettingError
from bike_assets_tests.conftest import (
    TINY_EXPORT,
    Pipeline,
    check_results,
    environment,
    query,
    write_export,
)

AS_OF = "2024-12-31"  # day 366 of 2024 (a leap year)
EARLY_AS_OF = "2024-03-15"

STORES = [
    "1,Santa Cruz Bikes,(831) 476-4321,santacruz@bikes.shop,3700 Portola Drive,Santa Cruz,CA,95060",
    "2,Baldwin Bikes,(516) 379-8888,baldwin@bikes.shop,4200 Chestnut Lane,Baldwin,NY,11432",
    "3,Rowlett Bikes,(972) 530-5555,rowlett@bikes.shop,8000 Fairway Avenue,Rowlett,TX,75088",
]
STATES = {1: "NY", 2: "TX", 3: "CA", 4: "CA", 5: "IL", 6: "NY", 7: "NY", 8: "NY", 9: "TX"}
STATES |= {10: "TX", 11: "CA", 12: "CA", 13: "IL", 14: "IL", 15: "ZZ"}
CUSTOMERS = [
    f"{c},First{c},Last{c},NULL,c{c}@example.com,{c} Main St,Town,{state},0100{c % 10}"
    for c, state in STATES.items()
]


def day(month: int, dom: int, year: int = 2024) -> str:
    return date(year, month, dom).isoformat()


# (order_id, customer_id, order_date, store_id, lines "item_id,product_id,quantity,price,discount")
ORDERS = [
    # Customer 1: two lines of 0.15 * 1 * 0.90 = 0.135 -> 0.27 (not 0.28: rounded once per order).
    (101, 1, day(1, 10), 2, ["1,10,1,0.15,0.10", "2,11,1,0.15,0.10"]),
    # Its line 1 is repeated identically (counted once: 2 * 94.99 = 189.98); line 2 has quantity
    # 0 (ignored).
    (103, 1, day(3, 5), 2, ["1,20,2,94.99,0.00", "1,20,2,94.99,0.00", "2,21,0,500.00,0.00"]),
    # Customer 2: an order without lines.
    (102, 2, day(5, 1), 3, []),
    # Customer 3: 2 orders at store 1, 2 at store 2 whose latest is later -> store 2.
    *[(300 + i, 3, day(i, 1), 1 if i <= 2 else 2, ["1,40,1,10.00,0.00"]) for i in (1, 2, 3, 4)],
    # Customer 4: 3 orders at store 1, 1 (the latest) at store 2 -> store 1 (most orders).
    *[(400 + i, 4, day(i, 2), 1 if i <= 3 else 2, ["1,40,1,10.00,0.00"]) for i in (1, 2, 3, 4)],
    # Customer 5: 2 at store 3 and 2 at store 2, both latest on 06-10 -> store 2 (lowest id).
    (501, 5, day(6, 1), 3, ["1,40,1,10.00,0.00"]),
    (502, 5, day(6, 10), 3, ["1,40,1,10.00,0.00"]),
    (503, 5, day(6, 5), 2, ["1,40,1,10.00,0.00"]),
    (504, 5, day(6, 10), 2, ["1,40,1,10.00,0.00"]),
    # Customer 6 has no order.
    # Customer 7: 10 orders of 625.00 * 0.80 = 500.00 -> exactly 5000.00: VIP, Gold.
    *[(700 + i, 7, day(7, i), 2, ["1,30,1,625.00,0.20"]) for i in range(1, 11)],
    # Customer 8: 9 * 500.00 + 499.99 = 4999.99 in 10 orders: Loyal, Silver.
    *[(800 + i, 8, day(8, i), 2, ["1,31,1,500.00,0.00"]) for i in range(1, 10)],
    (810, 8, day(8, 10), 2, ["1,31,1,499.99,0.00"]),
    # Customer 9: 5 * 400.00 = 2000.00: Loyal, Silver.
    *[(900 + i, 9, day(9, i), 3, ["1,32,1,400.00,0.00"]) for i in range(1, 6)],
    # Customer 10: 4 * 400.00 + 399.99 = 1999.99 in 5 orders: Regular, Silver.
    *[(1000 + i, 10, day(9, i), 3, ["1,32,1,400.00,0.00"]) for i in range(1, 5)],
    (1005, 10, day(9, 5), 3, ["1,32,1,399.99,0.00"]),
    # Customer 11: one order of 2 * 5000.00 = 10000.00: New, Platinum.
    (1101, 11, day(10, 1), 1, ["1,33,2,5000.00,0.00"]),
    # Customer 12: 3 * 333.33 = 999.99: Regular, Bronze.
    *[(1200 + i, 12, day(10, i), 1, ["1,34,1,333.33,0.00"]) for i in (1, 2, 3)],
    # Customer 13: one order of 1250.00 * 0.80 = 1000.00: New, Silver.
    (1301, 13, day(10, 15), 2, ["1,35,1,1250.00,0.20"]),
    # Customer 14: 3 * 2500.00 + 2499.99 = 9999.99 in 4 orders: Regular, Gold.
    *[(1400 + i, 14, day(11, i), 3, ["1,36,1,2500.00,0.00"]) for i in (1, 2, 3)],
    (1404, 14, day(11, 4), 3, ["1,36,1,2499.99,0.00"]),
    # Customer 15 (state ZZ): 100.00 in 2024, then 50.00 after the as-of date.
    (1501, 15, day(6, 1), 1, ["1,37,1,100.00,0.00"]),
    (1502, 15, day(1, 15, 2025), 1, ["1,37,1,50.00,0.00"]),
]

COLUMNS = (
    "store_id",
    "total_orders",
    "total_spent",
    "avg_order_value",
    "first_order_date",
    "last_order_date",
    "total_items_purchased",
    "days_since_last_order",
    "customer_segment",
    "ltv_segment",
)
NO_ORDERS = (None, None, None, None, None, None, None, None, "New", None)
D = Decimal
# Days since the last order at 2024-12-31 (day 366): 03-05 is day 31+29+5 = 65 -> 301;
# 05-01 = 122 -> 244; 04-01 = 92 -> 274; 04-02 = 93 -> 273; 06-10 = 162 -> 204; 07-10 = 192 ->
# 174; 08-10 = 223 -> 143; 09-05 = 249 -> 117; 10-01 = 275 -> 91; 10-03 = 277 -> 89;
# 10-15 = 289 -> 77; 11-04 = 309 -> 57; 06-01 = 153 -> 213.
EXPECTED = {
    # avg 190.25 / 2 = 95.125 -> 95.13 (half-up); items 1 + 1 + 2
    1: (2, 2, D("190.25"), D("95.13"), day(1, 10), day(3, 5), 4, 301, "Regular", "Bronze"),
    2: (3, 1, D("0.00"), D("0.00"), day(5, 1), day(5, 1), 0, 244, "New", "Bronze"),
    3: (2, 4, D("40.00"), D("10.00"), day(1, 1), day(4, 1), 4, 274, "Regular", "Bronze"),
    4: (1, 4, D("40.00"), D("10.00"), day(1, 2), day(4, 2), 4, 273, "Regular", "Bronze"),
    5: (2, 4, D("40.00"), D("10.00"), day(6, 1), day(6, 10), 4, 204, "Regular", "Bronze"),
    6: NO_ORDERS,
    7: (2, 10, D("5000.00"), D("500.00"), day(7, 1), day(7, 10), 10, 174, "VIP", "Gold"),
    # avg 4999.99 / 10 = 499.999 -> 500.00
    8: (2, 10, D("4999.99"), D("500.00"), day(8, 1), day(8, 10), 10, 143, "Loyal", "Silver"),
    9: (3, 5, D("2000.00"), D("400.00"), day(9, 1), day(9, 5), 5, 117, "Loyal", "Silver"),
    # avg 1999.99 / 5 = 399.998 -> 400.00
    10: (3, 5, D("1999.99"), D("400.00"), day(9, 1), day(9, 5), 5, 117, "Regular", "Silver"),
    11: (1, 1, D("10000.00"), D("10000.00"), day(10, 1), day(10, 1), 2, 91, "New", "Platinum"),
    12: (1, 3, D("999.99"), D("333.33"), day(10, 1), day(10, 3), 3, 89, "Regular", "Bronze"),
    13: (2, 1, D("1000.00"), D("1000.00"), day(10, 15), day(10, 15), 1, 77, "New", "Silver"),
    # avg 9999.99 / 4 = 2499.9975 -> 2500.00
    14: (3, 4, D("9999.99"), D("2500.00"), day(11, 1), day(11, 4), 4, 57, "Regular", "Gold"),
    # the 2025-01-15 order is after the as-of date: left out
    15: (1, 1, D("100.00"), D("100.00"), day(6, 1), day(6, 1), 1, 213, "New", "Bronze"),
}
# At 2024-03-15 only the orders up to that day count; 03-05 -> 03-15 is 10 days, 03-01 -> 14,
# 03-02 -> 13. Customer 3 has then 2 orders at store 1 and 1 at store 2: store 1.
EXPECTED_EARLY = dict.fromkeys(STATES, NO_ORDERS) | {
    1: (2, 2, D("190.25"), D("95.13"), day(1, 10), day(3, 5), 4, 10, "Regular", "Bronze"),
    3: (1, 3, D("30.00"), D("10.00"), day(1, 1), day(3, 1), 3, 14, "Regular", "Bronze"),
    4: (1, 3, D("30.00"), D("10.00"), day(1, 2), day(3, 2), 3, 13, "Regular", "Bronze"),
}
STORE_NAMES = {None: None, 1: "Santa Cruz Bikes", 2: "Baldwin Bikes", 3: "Rowlett Bikes"}

# Customers with orders by region and tier (customer 6 has none):
# Midwest: Gold {14}, Silver {13}, Bronze {5}; Northeast: Gold {7}, Silver {8}, Bronze {1};
# South: Silver {9, 10}: (2000.00 + 1999.99) / 2 = 1999.995 -> 2000.00, (5 + 5) / 2 orders;
# Bronze {2}; Unknown: Bronze {15}; West: Platinum {11},
# Bronze {3, 4, 12}: (40.00 + 40.00 + 999.99) / 3 = 359.9966.. -> 360.00, (4 + 4 + 3) / 3 = 3.67.
EXPECTED_SUMMARY = [
    ("Midwest", "Gold", 1, D("9999.99"), D("4.00")),
    ("Midwest", "Silver", 1, D("1000.00"), D("1.00")),
    ("Midwest", "Bronze", 1, D("40.00"), D("4.00")),
    ("Northeast", "Gold", 1, D("5000.00"), D("10.00")),
    ("Northeast", "Silver", 1, D("4999.99"), D("10.00")),
    ("Northeast", "Bronze", 1, D("190.25"), D("2.00")),
    ("South", "Silver", 2, D("2000.00"), D("5.00")),
    ("South", "Bronze", 1, D("0.00"), D("1.00")),
    ("Unknown", "Bronze", 1, D("100.00"), D("1.00")),
    ("West", "Platinum", 1, D("10000.00"), D("1.00")),
    ("West", "Bronze", 3, D("360.00"), D("3.67")),
]
# At 2024-03-15: Northeast Bronze {1}; West Bronze {3, 4}: (30.00 + 30.00) / 2, (3 + 3) / 2.
EXPECTED_EARLY_SUMMARY = [
    ("Northeast", "Bronze", 1, D("190.25"), D("2.00")),
    ("West", "Bronze", 2, D("30.00"), D("3.00")),
]


def export_files(up_to: str | None = None) -> dict[str, list[str]]:
    """The export's files; with up_to, only the orders dated up to that day (and their lines)."""
    orders = [o for o in ORDERS if up_to is None or o[2] <= up_to]
    return {
        "stores.csv": STORES,
        "customers.csv": CUSTOMERS,
        # required_date and shipped_date = order_date: delivery is not what is tested here.
        "orders.csv": [f"{o},{c},4,{d},{d},{d},{s},2" for o, c, d, s, _ in orders],
        "order_items.csv": [f"{o},{line}" for o, _, _, _, lines in orders for line in lines],
    }


def make_pipeline(folder: Path, files: dict[str, list[str]]) -> Pipeline:
    return Pipeline(folder / "warehouse.duckdb", write_export(folder / "raw", files))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pipeline, dg.ExecuteInProcessResult]:
    pipeline = make_pipeline(tmp_path_factory.mktemp("marts"), export_files())
    return pipeline, pipeline.run(as_of=AS_OF)


@pytest.fixture(scope="module")
def early(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    pipeline = make_pipeline(tmp_path_factory.mktemp("marts_early"), export_files())
    assert pipeline.run(as_of=EARLY_AS_OF).success
    return pipeline


def customer_rows(pipeline: Pipeline) -> dict[int, tuple]:
    rows = query(pipeline, "select * from marts.customers_enriched order by customer_id")
    return {
        row["customer_id"]: tuple(
            value.isoformat() if isinstance(value, date) else value
            for value in (row[column] for column in COLUMNS)
        )
        for row in rows
    }


def summary_rows(pipeline: Pipeline) -> list[tuple]:
    return [tuple(row.values()) for row in query(pipeline, "from marts.region_segment_summary")]


def test_run_succeeds_and_only_warns_on_the_suspicious_rows(run) -> None:
    _, result = run
    assert result.success
    evaluations = check_results(result)
    failed = sorted(name for name, e in evaluations.items() if not e.passed)
    # Order 102 has no line, order 103's line 2 has quantity 0 (not counted) and customer 15's
    # state ZZ has no census region: WARN only.
    assert failed == [
        "orders_enriched/orders_have_lines",
        "stg_customers/regions_are_known",
        "stg_order_items/lines_not_counted",
    ]
    assert {evaluations[name].severity for name in failed} == {dg.AssetCheckSeverity.WARN}
    assert evaluations["orders_enriched/orders_have_lines"].metadata["failing_rows"].value == 1
    assert evaluations["stg_order_items/lines_not_counted"].metadata["failing_rows"].value == 1


def test_orders_enriched_totals(run) -> None:
    pipeline, _ = run
    rows = query(
        pipeline,
        "select order_id, total_items, unique_products, total_order_net_price "
        "from intermediate.orders_enriched where order_id in (101, 102, 103, 1502) order by 1",
    )
    assert [tuple(row.values()) for row in rows] == [
        (101, 2, 2, D("0.27")),  # 0.135 + 0.135, rounded once
        (102, 0, 0, D("0.00")),  # no lines
        (103, 2, 1, D("189.98")),  # repeated line once, quantity-0 line ignored
        (1502, 1, 1, D("50.00")),  # after the as-of date, still an order
    ]
    (count,) = query(pipeline, "select count(*) as n from intermediate.orders_enriched")
    assert count["n"] == len(ORDERS)


def test_unique_products_counts_each_product_once(tiny_pipeline: Pipeline, tmp_path: Path) -> None:
    # Order 1's lines: product 10 on lines 1 and 3, product 11, and a line with no product.
    # Order 2: products 12 and 76, distinct although equal mod 64.
    files = {
        **TINY_EXPORT,
        "order_items.csv": [
            "1,1,10,1,0.15,0.10",
            "1,2,11,1,0.15,0.10",
            "1,3,10,2,1.00,0.00",
            "1,4,NULL,1,1.00,0.00",
            "2,1,12,2,100.00,0.05",
            "2,2,76,1,1.00,0.00",
            "3,1,13,1,599.99,0.20",
        ],
    }
    pipeline = tiny_pipeline.with_raw_dir(write_export(tmp_path / "lines", files))
    assert pipeline.run().success
    rows = query(
        pipeline,
        "select order_id, total_items, unique_products from intermediate.orders_enriched "
        "order by order_id",
    )
    # Order 1: 1 + 1 + 2 + 1 = 5 units; products 10 and 11 (the null is no product).
    assert [tuple(row.values()) for row in rows] == [(1, 5, 2), (2, 3, 2), (3, 1, 1)]


def test_customers_enriched_figures(run) -> None:
    pipeline, _ = run
    assert customer_rows(pipeline) == EXPECTED


def test_customers_enriched_store_names_and_attributes(run) -> None:
    pipeline, _ = run
    rows = query(
        pipeline,
        "select customer_id, store_id, store_name, state, region, as_of_date "
        "from marts.customers_enriched order by customer_id",
    )
    assert [r["customer_id"] for r in rows] == list(STATES)  # every customer, once
    for row in rows:
        assert row["store_name"] == STORE_NAMES[row["store_id"]]
        assert row["state"] == STATES[row["customer_id"]]
        assert row["as_of_date"] == date(2024, 12, 31)
    assert rows[14]["region"] == "Unknown"  # ZZ


def test_region_segment_summary(run) -> None:
    pipeline, _ = run
    assert summary_rows(pipeline) == EXPECTED_SUMMARY
    # num_customers counts only customers with orders: 15 customers, customer 6 without.
    assert sum(row[2] for row in EXPECTED_SUMMARY) == 14


def test_earlier_as_of_date_reproduces_that_day(early: Pipeline) -> None:
    assert customer_rows(early) == EXPECTED_EARLY
    assert summary_rows(early) == EXPECTED_EARLY_SUMMARY
    dates = query(early, "select distinct as_of_date from marts.customers_enriched")
    assert dates == [{"as_of_date": date(2024, 3, 15)}]
    # Orders are not filtered by date: every order of the export is there.
    (count,) = query(early, "select count(*) as n from intermediate.orders_enriched")
    assert count["n"] == len(ORDERS)


def test_earlier_as_of_date_equals_a_run_on_that_day_export(
    early: Pipeline, tmp_path: Path
) -> None:
    # The export as it was on 2024-03-15 (no later order) gives the same marts.
    that_day = make_pipeline(tmp_path, export_files(up_to=EARLY_AS_OF))
    assert that_day.run(as_of=EARLY_AS_OF).success
    for table in ("marts.customers_enriched", "marts.region_segment_summary"):
        assert query(that_day, f"from {table}") == query(early, f"from {table}")


def test_as_of_date_falls_back_to_bike_as_of_date(tmp_path: Path) -> None:
    pipeline = make_pipeline(tmp_path, export_files()).with_env(BIKE_AS_OF_DATE=EARLY_AS_OF)
    assert pipeline.run(as_of=None).success  # no run config
    assert customer_rows(pipeline) == EXPECTED_EARLY
    # The run's config overrides BIKE_AS_OF_DATE.
    assert pipeline.run(as_of=AS_OF).success
    assert customer_rows(pipeline) == EXPECTED


def test_business_calendar() -> None:
    assert BusinessCalendar(as_of_date="2024-03-15").as_of() == date(2024, 3, 15)
    zone = "Pacific/Kiritimati"  # UTC+14: often another day than UTC
    before = datetime.now(ZoneInfo(zone)).date()
    today = BusinessCalendar(timezone=zone).as_of()
    assert today in {before, datetime.now(ZoneInfo(zone)).date()}
    for bad in ("2024-02-30", "15/03/2024", "2024-3-15", "2200-01-01"):
        with pytest.raises(SettingError, match="expected a date written YYYY-MM-DD"):
            BusinessCalendar(as_of_date=bad).as_of()


def test_bike_as_of_date_reaches_the_calendar(tiny_pipeline: Pipeline) -> None:
    pipeline = tiny_pipeline.with_env(BIKE_AS_OF_DATE="2024-03-15")
    calendar = pipeline.definitions().resources["calendar"]
    with environment(pipeline.environment), dg.build_resources({"calendar": calendar}) as built:
        assert built.calendar.as_of() == date(2024, 3, 15)
