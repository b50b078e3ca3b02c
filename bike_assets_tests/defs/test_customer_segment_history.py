"""marts.customer_segment_history (docs/tables.md, "marts.customer_segment_history"): histories
computed by hand on a tiny export, run through the whole daily_refresh; and each of its checks
failing on a hand-broken table.

The rules (sql/macros/rules.sql), applied to a customer's cumulative figures at the end of each
order day: segment VIP when orders >= 10 and spent >= 5000; Loyal when orders >= 5 and spent >=
2000; Regular when orders >= 2; else New. Tier Platinum >= 10000; Gold >= 5000; Silver >= 1000;
else Bronze.
"""

from collections.abc import Iterator
from datetime import date
from decimal import Decimal

import dagster as dg
import duckdb
import pytest

from bike_assets.defs.marts.customer_segment_history import (
    CUSTOMER_SEGMENT_HISTORY,
    CUSTOMER_SEGMENT_HISTORY_CHECKS,
    moves,
)
from bike_assets.lib.checks import LAYERS_AGREE, Check
from bike_assets.lib.warehouse import query_rows
from bike_assets_tests.conftest import (
    TINY_EXPORT,
    Pipeline,
    check_results,
    query,
    write_export,
)

AS_OF = "2024-12-31"
HISTORY = "marts.customer_segment_history"
COLUMNS = (
    "customer_id, customer_segment, ltv_segment, valid_from, valid_to, total_orders, total_spent"
)
CURRENT = ("customer_id", "customer_segment", "ltv_segment", "valid_from", "total_orders")
CUSTOMERS = [
    f"{c},First{c},Last{c},NULL,c{c}@example.com,{c} Main St,Town,NY,1000{c}" for c in range(1, 8)
]

# (order_id, customer_id, order_date, price of its one line: list_price, quantity 1, discount 0)
ORDERS = [
    # Customer 1: three orders on one day (one change: 3 orders, 300.00 -> Regular/Bronze, never
    # New), then a 4th order (350.00) that changes nothing: still one row, whose figures are
    # those at valid_from (3, 300.00) while customers_enriched counts 4 and 350.00.
    (101, 1, "2024-03-01", "100.00"),
    (102, 1, "2024-03-01", "100.00"),
    (103, 1, "2024-03-01", "100.00"),
    (104, 1, "2024-04-01", "50.00"),
    # Customer 2: ten orders of 500.00 on May 1st to 10th. Day 1: 1, 500.00 -> New/Bronze;
    # day 2: 2, 1000.00 -> Regular/Silver; days 3-4: 3-4 orders, still Regular/Silver; day 5:
    # 5, 2500.00 -> Loyal/Silver; days 6-9: still Loyal/Silver (4500.00 at day 9); day 10:
    # exactly 10 orders and 5000.00 -> VIP/Gold (the cut-offs are >=).
    *[(200 + d, 2, f"2024-05-{d:02d}", "500.00") for d in range(1, 11)],
    # Customer 3: the same, but the 10th order is 499.99: 10 orders, 4999.99 -> stays
    # Loyal/Silver (current since May 5th, figures 5, 2500.00 there).
    *[(300 + d, 3, f"2024-05-{d:02d}", "500.00") for d in range(1, 10)],
    (310, 3, "2024-05-10", "499.99"),
    # Customer 4: the tier rises twice, the segment stays Regular: Feb 1st two orders of
    # 300.00 -> 2, 600.00 Regular/Bronze; Jun 15th 500.00 -> 3, 1100.00 Regular/Silver;
    # Sep 30th 4000.00 -> 4, 5100.00 Regular/Gold.
    (401, 4, "2024-02-01", "300.00"),
    (402, 4, "2024-02-01", "300.00"),
    (403, 4, "2024-06-15", "500.00"),
    (404, 4, "2024-09-30", "4000.00"),
    # Customer 5: Feb 20th 1000.00 -> New/Silver, until Feb 29th (2024 is a leap year); Mar 1st
    # 100.00 -> 2, 1100.00 Regular/Silver; Dec 31st (the as-of date: counted) 4000.00 -> 3,
    # 5100.00 Regular/Gold; Jan 1st and Feb 1st 2025 (after the as-of date: left out).
    (501, 5, "2024-02-20", "1000.00"),
    (502, 5, "2024-03-01", "100.00"),
    (503, 5, "2024-12-31", "4000.00"),
    (504, 5, "2025-01-01", "5000.00"),
    (505, 5, "2025-02-01", "5000.00"),
    # Customer 6: only an order after the as-of date -> no row. Customer 7: no order -> no row.
    (601, 6, "2025-01-15", "700.00"),
]

EXPORT = {
    "customers.csv": CUSTOMERS,
    "stores.csv": TINY_EXPORT["stores.csv"],
    "orders.csv": [f"{o},{c},4,{d},{d},NULL,1,2" for o, c, d, _ in ORDERS],
    "order_items.csv": [f"{o},1,10,1,{price},0.00" for o, _, _, price in ORDERS],
}


def row(customer, segment, tier, valid_from, valid_to, orders, spent):
    """A history row as `query` returns it (as_of_date left out)."""
    return {
        "customer_id": customer,
        "customer_segment": segment,
        "ltv_segment": tier,
        "valid_from": date.fromisoformat(valid_from),
        "valid_to": date.fromisoformat(valid_to) if valid_to else None,
        "total_orders": orders,
        "total_spent": Decimal(spent),
    }


# Every row as of 2024-12-31, computed by hand above: valid_to = the day before the next row.
EXPECTED = {
    1: [row(1, "Regular", "Bronze", "2024-03-01", None, 3, "300.00")],
    2: [
        row(2, "New", "Bronze", "2024-05-01", "2024-05-01", 1, "500.00"),
        row(2, "Regular", "Silver", "2024-05-02", "2024-05-04", 2, "1000.00"),
        row(2, "Loyal", "Silver", "2024-05-05", "2024-05-09", 5, "2500.00"),
        row(2, "VIP", "Gold", "2024-05-10", None, 10, "5000.00"),
    ],
    3: [
        row(3, "New", "Bronze", "2024-05-01", "2024-05-01", 1, "500.00"),
        row(3, "Regular", "Silver", "2024-05-02", "2024-05-04", 2, "1000.00"),
        row(3, "Loyal", "Silver", "2024-05-05", None, 5, "2500.00"),
    ],
    4: [
        row(4, "Regular", "Bronze", "2024-02-01", "2024-06-14", 2, "600.00"),
        row(4, "Regular", "Silver", "2024-06-15", "2024-09-29", 3, "1100.00"),
        row(4, "Regular", "Gold", "2024-09-30", None, 4, "5100.00"),
    ],
    5: [
        row(5, "New", "Silver", "2024-02-20", "2024-02-29", 1, "1000.00"),
        row(5, "Regular", "Silver", "2024-03-01", "2024-12-30", 2, "1100.00"),
        row(5, "Regular", "Gold", "2024-12-31", None, 3, "5100.00"),
    ],
}


@pytest.fixture(scope="module")
def daily_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Pipeline, dg.ExecuteInProcessResult]:
    """The export above, run once through the whole daily_refresh as of 2024-12-31."""
    folder = tmp_path_factory.mktemp("history")
    built = Pipeline(folder / "warehouse.duckdb", write_export(folder / "raw", EXPORT))
    result = built.run(as_of=AS_OF)
    assert result.success
    return built, result


@pytest.fixture
def pipeline(daily_run: tuple[Pipeline, dg.ExecuteInProcessResult]) -> Pipeline:
    return daily_run[0]


def history(pipeline: Pipeline, customer: int | None = None) -> list[dict[str, object]]:
    where = f"where customer_id = {customer}" if customer is not None else ""
    return query(
        pipeline, f"select {COLUMNS} from {HISTORY} {where} order by customer_id, valid_from"
    )


# --- Hand-computed histories ------------------------------------------------------------------


def test_several_orders_on_one_day_make_one_change(pipeline):
    assert history(pipeline, 1) == EXPECTED[1]
    assert history(pipeline, 4)[0] == EXPECTED[4][0]  # two orders on Feb 1st: 2, 600.00


def test_becomes_vip_at_exactly_the_10th_order_and_5000(pipeline):
    assert history(pipeline, 2) == EXPECTED[2]


def test_4999_99_in_10_orders_stays_loyal(pipeline):
    assert history(pipeline, 3) == EXPECTED[3]


def test_tier_rises_twice_bronze_silver_gold(pipeline):
    assert history(pipeline, 4) == EXPECTED[4]


def test_orders_after_the_as_of_date_are_left_out_and_valid_to_is_the_day_before(pipeline):
    # 2025's 5000.00 orders would make customer 5 Regular/Platinum; Feb 29th is the day before
    # Mar 1st in 2024; the change on the as-of date itself is counted.
    assert history(pipeline, 5) == EXPECTED[5]


def test_customers_without_orders_up_to_the_as_of_date_have_no_row(pipeline):
    assert history(pipeline, 6) == []
    assert history(pipeline, 7) == []


def test_whole_table_and_as_of_date(pipeline):
    assert history(pipeline) == [r for c in sorted(EXPECTED) for r in EXPECTED[c]]
    assert query(pipeline, f"select distinct as_of_date from {HISTORY}") == [
        {"as_of_date": date(2024, 12, 31)}
    ]


def test_current_rows_equal_customers_enriched(pipeline):
    """Same customers, pair and as-of date; the figures are those at valid_from, so they equal
    customers_enriched's when the last order day started the period (customers 2, 4, 5) and are
    lower otherwise (customer 1: 3, 300.00 vs 4, 350.00; customer 3: 5, 2500.00 vs 10,
    4999.99)."""
    current = query(
        pipeline,
        f"select customer_id, customer_segment, ltv_segment, as_of_date, total_orders, "
        f"total_spent from {HISTORY} where valid_to is null order by customer_id",
    )
    customers = query(
        pipeline,
        "select customer_id, customer_segment, ltv_segment, as_of_date, total_orders, "
        "total_spent from marts.customers_enriched where total_orders > 0 order by customer_id",
    )
    pair = ("customer_id", "customer_segment", "ltv_segment", "as_of_date")
    assert [{k: r[k] for k in pair} for r in current] == [
        {k: r[k] for k in pair} for r in customers
    ]
    figures = {r["customer_id"]: (r["total_orders"], r["total_spent"]) for r in customers}
    assert figures == {
        1: (4, Decimal("350.00")),
        2: (10, Decimal("5000.00")),
        3: (10, Decimal("4999.99")),
        4: (4, Decimal("5100.00")),
        5: (3, Decimal("5100.00")),
    }
    assert {r["customer_id"]: (r["total_orders"], r["total_spent"]) for r in current} == {
        1: (3, Decimal("300.00")),
        2: (10, Decimal("5000.00")),
        3: (5, Decimal("2500.00")),
        4: (4, Decimal("5100.00")),
        5: (3, Decimal("5100.00")),
    }


def test_every_check_ran_and_passed(daily_run):
    results = check_results(daily_run[1])
    names = [c.name for c in CUSTOMER_SEGMENT_HISTORY_CHECKS[CUSTOMER_SEGMENT_HISTORY.key]]
    assert len(names) == 7
    for name in names:
        assert results[f"customer_segment_history/{name}"].passed, name


def test_moves_chart_counts_the_last_30_days_moves(daily_run):
    """As of 2024-12-31 the 30 days are Dec 2nd to 31st: one move, customer 5's on Dec 31st
    (Regular/Silver -> Regular/Gold); customer 4's Sep 30th move is older."""
    pipeline, result = daily_run
    with duckdb.connect(str(pipeline.warehouse), read_only=True) as conn:
        assert moves(conn, HISTORY) == [("Regular / Silver", "Regular / Gold", 1)]
    materialization = result.asset_materializations_for_node("customer_segment_history")
    chart = materialization[0].metadata["moves_last_30_days"].value
    assert chart.startswith("![Moves in the 30 days up to 2024-12-31: 1 customer](data:image/png")


def test_a_run_for_a_past_as_of_date_rebuilds_that_days_history(tmp_path):
    """As of 2024-05-07: customer 2 has 7 orders, 3500.00 -> Loyal/Silver since May 5th
    (current); customer 5 is Regular/Silver since Mar 1st; customer 1 Regular/Bronze; customers
    3 like 2; customer 4 Regular/Bronze since Feb 1st (its Jun 15th order is later)."""
    pipeline = Pipeline(tmp_path / "w.duckdb", write_export(tmp_path / "raw", EXPORT))
    assert pipeline.run(as_of="2024-05-07").success
    assert query(
        pipeline,
        f"select {', '.join(CURRENT)} from {HISTORY} where valid_to is null order by customer_id",
    ) == [
        dict(zip(CURRENT, r, strict=True))
        for r in [
            (1, "Regular", "Bronze", date(2024, 3, 1), 3),
            (2, "Loyal", "Silver", date(2024, 5, 5), 5),
            (3, "Loyal", "Silver", date(2024, 5, 5), 5),
            (4, "Regular", "Bronze", date(2024, 2, 1), 2),
            (5, "Regular", "Silver", date(2024, 3, 1), 2),
        ]
    ]
    assert history(pipeline, 2) == [
        *EXPECTED[2][:2],
        row(2, "Loyal", "Silver", "2024-05-05", None, 5, "2500.00"),
    ]


def test_rebuilding_only_the_history_takes_customers_enriched_as_of_date(tmp_path):
    """The history reads its as-of date from customers_enriched, not from the calendar: a run
    of the history alone, configured for 2025-06-30, rebuilds it as of the published
    customers_enriched's 2024-12-31, and the layers still agree (it is published)."""
    pipeline = Pipeline(tmp_path / "w.duckdb", write_export(tmp_path / "raw", EXPORT))
    assert pipeline.run(as_of=AS_OF).success
    result = pipeline.run(as_of="2025-06-30", asset_selection=[CUSTOMER_SEGMENT_HISTORY.key])
    assert result.success
    assert [m.asset_key for m in result.get_asset_materialization_events()] == [
        CUSTOMER_SEGMENT_HISTORY.key
    ]
    assert history(pipeline) == [r for c in sorted(EXPECTED) for r in EXPECTED[c]]
    assert query(pipeline, f"select distinct as_of_date from {HISTORY}") == [
        {"as_of_date": date(2024, 12, 31)}
    ]


def test_customers_enriched_alone_for_a_new_date_is_not_published(tmp_path):
    """Rebuilding customers_enriched alone as of 2025-06-30 would leave the published history as
    of 2024-12-31 beside it: 6 customers disagree. Customers 1-4: the as-of date only;
    customer 5: also the pair (5 orders, 15100.00: Loyal/Platinum vs Regular/Gold); customer 6
    (700.00 on 2025-01-15) has no history. Nothing is published."""
    pipeline = Pipeline(tmp_path / "w.duckdb", write_export(tmp_path / "raw", EXPORT))
    assert pipeline.run(as_of=AS_OF).success
    customers_key = dg.AssetKey(["marts", "customers_enriched"])
    result = pipeline.run(as_of="2025-06-30", asset_selection=[customers_key])
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message
    assert "marts.customer_segment_history / current_rows_match_customers_enriched" in message
    assert "6 failing row(s)" in message
    assert query(pipeline, "select distinct as_of_date from marts.customers_enriched") == [
        {"as_of_date": date(2024, 12, 31)}
    ]


# --- Each check fails on a hand-broken table --------------------------------------------------

CHECKS = {c.name: c for c in CUSTOMER_SEGMENT_HISTORY_CHECKS[CUSTOMER_SEGMENT_HISTORY.key]}


@pytest.fixture
def conn() -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory warehouse where every check passes, as of 2024-12-31. Orders: customer 1 two
    on 2024-01-01 (600.00 + 400.00 = 2, 1000.00: Regular/Silver); customer 2 100.00 on
    2024-01-01 (New/Bronze) and 100.00 on 2024-02-01 (2, 200.00: Regular/Bronze); customer 3
    none (New, no tier, no history)."""
    with duckdb.connect() as conn:
        conn.execute("create schema marts")
        conn.execute(
            "create table marts.customers_enriched as select customer_id, customer_segment, "
            "ltv_segment, total_orders::bigint as total_orders, "
            "total_spent::decimal(18,2) as total_spent, date '2024-12-31' as as_of_date "
            "from (values (1, 'Regular', 'Silver', 2, 1000.00), "
            "(2, 'Regular', 'Bronze', 2, 200.00), (3, 'New', null, null, null)) "
            "t(customer_id, customer_segment, ltv_segment, "
            "total_orders, total_spent)"
        )
        conn.execute(
            f"create table {HISTORY} as select customer_id::bigint as customer_id, "
            "customer_segment, ltv_segment, valid_from::date as valid_from, "
            "valid_to::date as valid_to, total_orders::bigint as total_orders, "
            "total_spent::decimal(18,2) as total_spent, date '2024-12-31' as as_of_date "
            "from (values "
            "(1, 'Regular', 'Silver', '2024-01-01', null, 2, 1000.00), "
            "(2, 'New', 'Bronze', '2024-01-01', '2024-01-31', 1, 100.00), "
            "(2, 'Regular', 'Bronze', '2024-02-01', null, 2, 200.00)"
            ") t(customer_id, customer_segment, ltv_segment, valid_from, valid_to, "
            "total_orders, total_spent)"
        )
        yield conn


def failing_rows(conn: duckdb.DuckDBPyConnection, check: Check) -> int:
    """How many rows break the check on the history table (its SQL run as the audit runs it)."""
    _, _, count = query_rows(conn, check.sql(this=HISTORY), 5)
    return count


def test_every_check_passes_on_the_good_table(conn):
    for check in CHECKS.values():
        assert failing_rows(conn, check) == 0, check.name
    assert failing_rows(conn, LAYERS_AGREE[HISTORY]) == 0


@pytest.mark.parametrize(
    ("check", "breakage", "failing"),
    [
        # A column of the wrong type: total_spent DOUBLE, not DECIMAL(18,2).
        (
            "columns_match_contract",
            f"alter table {HISTORY} alter total_spent type double",
            1,
        ),
        # A missing column.
        ("columns_match_contract", f"alter table {HISTORY} drop column as_of_date", 1),
        # Customer 2's 2024-02-01 row twice: one key, 2 rows.
        (
            "customer_id_valid_from_is_unique_and_not_null",
            f"insert into {HISTORY} select * from {HISTORY} where customer_id = 2 "
            "and valid_from = '2024-02-01'",
            1,
        ),
        (
            "customer_id_valid_from_is_unique_and_not_null",
            f"update {HISTORY} set valid_from = null where customer_id = 1",
            1,
        ),
        # Two current rows for customer 2.
        (
            "history_one_current_row",
            f"update {HISTORY} set valid_to = null where customer_id = 2",
            1,
        ),
        # Customer 1 (who has orders) without a current row, and with no row at all.
        (
            "history_one_current_row",
            f"update {HISTORY} set valid_to = '2024-06-30' where customer_id = 1",
            1,
        ),
        ("history_one_current_row", f"delete from {HISTORY} where customer_id = 1", 1),
        # A current row for customer 3, who has no order.
        (
            "history_one_current_row",
            f"insert into {HISTORY} values (3, 'New', 'Bronze', '2024-03-01', null, 1, 1.00, "
            "'2024-12-31')",
            1,
        ),
        # Overlap: customer 2's first period ends 2024-02-05, after the next starts (02-01).
        (
            "history_periods_connect",
            f"update {HISTORY} set valid_to = '2024-02-05' where customer_id = 2 "
            "and valid_from = '2024-01-01'",
            1,
        ),
        # Gap: it ends 2024-01-20, 11 days before the next starts.
        (
            "history_periods_connect",
            f"update {HISTORY} set valid_to = '2024-01-20' where customer_id = 2 "
            "and valid_from = '2024-01-01'",
            1,
        ),
        # Two current rows: the first one is open though another follows.
        (
            "history_periods_connect",
            f"update {HISTORY} set valid_to = null where customer_id = 2",
            1,
        ),
        # The last row closed: customer 1's only period ends though none follows.
        (
            "history_periods_connect",
            f"update {HISTORY} set valid_to = '2024-06-30' where customer_id = 1",
            1,
        ),
        # Two consecutive periods in the same pair (New/Bronze, then New/Bronze): not a change.
        (
            "history_periods_connect",
            f"update {HISTORY} set customer_segment = 'New' where customer_id = 2",
            1,
        ),
        # A period that starts after the as-of date (the as-of date set to 2024-01-15).
        (
            "history_dates_in_order",
            f"update {HISTORY} set as_of_date = '2024-01-15'",
            1,
        ),
        # A period that ends before it starts.
        (
            "history_dates_in_order",
            f"update {HISTORY} set valid_to = '2023-12-31' where customer_id = 2 "
            "and valid_from = '2024-01-01'",
            1,
        ),
        # Segment VIP for 2 orders, 1000.00 (the rules give Regular).
        (
            "history_segments_are_valid",
            f"update {HISTORY} set customer_segment = 'VIP' where customer_id = 1",
            1,
        ),
        # Tier Silver for 999.99 (the rules give Bronze: the cut-off is >= 1000).
        (
            "history_segments_are_valid",
            f"update {HISTORY} set total_spent = 999.99 where customer_id = 1",
            1,
        ),
        # A row without a tier.
        (
            "history_segments_are_valid",
            f"update {HISTORY} set ltv_segment = null where customer_id = 2",
            2,
        ),
    ],
)
def test_check_fails_on_a_broken_table(conn, check, breakage, failing):
    conn.execute(breakage)
    assert failing_rows(conn, CHECKS[check]) == failing


@pytest.mark.parametrize(
    ("breakage", "failing"),
    [
        # customers_enriched says Loyal for customer 2; the history's current row says Regular.
        ("update marts.customers_enriched set customer_segment = 'Loyal' where customer_id = 2", 1),
        # The tier differs.
        (f"update {HISTORY} set ltv_segment = 'Gold' where customer_id = 1", 1),
        # The history is as of another day than customers_enriched (both customers).
        (f"update {HISTORY} set as_of_date = '2024-12-30'", 2),
        # More orders in the history's current row (3) than customers_enriched counts (2).
        (f"update {HISTORY} set total_orders = 3 where customer_id = 1 and valid_to is null", 1),
        # More money (1000.01 > 1000.00).
        (f"update {HISTORY} set total_spent = 1000.01 where customer_id = 1", 1),
        # A customer with orders missing from the history, and one only in the history.
        (f"delete from {HISTORY} where customer_id = 1", 1),
        ("delete from marts.customers_enriched where customer_id = 2", 1),
    ],
)
def test_layers_agree_check_fails_on_a_broken_table(conn, breakage, failing):
    conn.execute(breakage)
    assert failing_rows(conn, LAYERS_AGREE[HISTORY]) == failing


def test_history_is_declared_in_the_marts_group_after_its_parents():
    assert CUSTOMER_SEGMENT_HISTORY.key == dg.AssetKey(["marts", "customer_segment_history"])
    assert CUSTOMER_SEGMENT_HISTORY.out.group_name == "marts"
    assert set(CUSTOMER_SEGMENT_HISTORY.deps) == {
        dg.AssetKey(["intermediate", "orders_enriched"]),
        dg.AssetKey(["marts", "customers_enriched"]),
    }
