"""The asset checks (lib/checks.py and sql/checks/): every builder and every table's checks, on
hand-made DuckDB tables, each failing on a hand-made bad table with the right failing rows."""

import random
from collections import Counter
from collections.abc import Iterator

import dagster as dg
import duckdb
import pytest

from bike_assets.defs.intermediate import ORDERS_ENRICHED, ORDERS_ENRICHED_CHECKS, orders_enriched
from bike_assets.defs.marts.customers_enriched import (
    CUSTOMERS_ENRICHED,
    CUSTOMERS_ENRICHED_CHECKS,
    customers_enriched,
)
from bike_assets.defs.marts.region_segment_summary import (
    REGION_SEGMENT_SUMMARY,
    REGION_SEGMENT_SUMMARY_CHECKS,
    region_segment_summary,
)
from bike_assets.defs.staging import (
    REJECTED_ROWS,
    STAGING_CHECKS,
    STAGING_TABLES,
    STG_CUSTOMERS,
    STG_ORDER_ITEMS,
    staging,
)
from bike_assets.lib import checks
from bike_assets.lib.checks import ERROR, LAYERS_AGREE, WARN, Check
from bike_assets.lib.specs import Table
from bike_assets_tests.conftest import evaluate_check, sample_rows

KEY = dg.AssetKey(["test", "t"])

TABLES: tuple[Table, ...] = (
    *STAGING_TABLES,
    ORDERS_ENRICHED,
    CUSTOMERS_ENRICHED,
    REGION_SEGMENT_SUMMARY,
)
TABLE_CHECKS: dict[dg.AssetKey, list[Check]] = {
    **STAGING_CHECKS,
    **ORDERS_ENRICHED_CHECKS,
    **CUSTOMERS_ENRICHED_CHECKS,
    **REGION_SEGMENT_SUMMARY_CHECKS,
}
ASSETS = (staging, orders_enriched, customers_enriched, region_segment_summary)


def declared(table: Table, name: str) -> Check:
    """The check `name` as declared on the table's asset."""
    (check,) = [check for check in TABLE_CHECKS[table.key] if check.name == name]
    return check


@pytest.fixture
def conn() -> Iterator[duckdb.DuckDBPyConnection]:
    with duckdb.connect() as conn:
        conn.execute("create schema test")
        yield conn


def run(check: Check, conn: duckdb.DuckDBPyConnection) -> dg.AssetCheckResult:
    """Run a check on table test.t (the tables it refers to, by their published names)."""
    return evaluate_check(check, conn, KEY, "test.t")


def assert_passes(result: dg.AssetCheckResult) -> None:
    assert result.passed, result.metadata["sample"].value
    assert result.metadata["failing_rows"].value == 0
    assert result.metadata["sample"].value == "none"


def assert_fails(result: dg.AssetCheckResult, failing_rows: int, *offenders: dict) -> None:
    """The check failed on failing_rows rows, and each offender is (a subset of) a sample row."""
    assert not result.passed
    assert result.metadata["failing_rows"].value == failing_rows
    sample = sample_rows(result.metadata)
    for offender in offenders:
        assert any(offender.items() <= row.items() for row in sample), (offender, sample)


# --- Check.evaluate ---------------------------------------------------------------------------


def test_evaluate_names_asset_check_and_severity_and_samples_at_most_five_rows(conn):
    conn.execute(
        "create table test.t as select range as order_id, 1 as customer_id, "
        "date '2024-01-01' as order_date, 0 as total_items from range(7)"
    )
    check = declared(ORDERS_ENRICHED, "orders_have_lines")

    result = run(check, conn)

    assert (result.asset_key, result.check_name, result.severity) == (
        KEY,
        "orders_have_lines",
        WARN,
    )
    assert result.metadata["failing_rows"].value == 7  # every row of range(7) fails...
    assert len(sample_rows(result.metadata)) == 5  # ...and the sample shows the first five
    assert sample_rows(result.metadata)[0] == {
        "order_id": "0",
        "customer_id": "1",
        "order_date": "2024-01-01",
    }


def test_spec_is_blocking_only_for_error_checks():
    error = checks.unique_not_null("order_id").spec(KEY)
    warn = checks.rule("orders_have_lines", "Orders have lines", WARN).spec(KEY)
    assert (error.name, error.asset_key, error.blocking) == (
        "order_id_is_unique_and_not_null",
        KEY,
        True,
    )
    assert (warn.name, warn.blocking) == ("orders_have_lines", False)
    assert warn.description == "Orders have lines (WARN)"


def result(name: str, passed: bool, severity: dg.AssetCheckSeverity) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=KEY,
        check_name=name,
        passed=passed,
        severity=severity,
        metadata={
            "failing_rows": dg.MetadataValue.int(0 if passed else 2),
            "sample": dg.MetadataValue.md("none" if passed else "| id |\n| --- |\n| 7 |"),
        },
    )


def test_raise_on_errors_names_each_failed_error_check_and_its_rows():
    results = [
        result("a_passes", True, ERROR),
        result("b_fails", False, ERROR),
        result("c_warns", False, WARN),
    ]
    with pytest.raises(dg.Failure) as failure:
        checks.raise_on_errors(results)
    description = failure.value.description
    assert "- test/t / b_fails: 2 failing row(s)" in description
    assert "| 7 |" in description
    assert "a_passes" not in description and "c_warns" not in description
    # WARN failures alone do not fail the step.
    checks.raise_on_errors([result("a_passes", True, ERROR), result("c_warns", False, WARN)])


# --- columns_match_contract -------------------------------------------------------------------

CONTRACT = Table(
    "test",
    "t",
    "A test table.",
    [
        ("customer_id", "BIGINT", ""),
        ("total_spent", "DECIMAL(18,2)", ""),
        ("as_of_date", "DATE", ""),
    ],
    [],
)


def test_columns_match_contract_passes_on_the_contract(conn):
    conn.execute(
        "create table test.t (customer_id bigint, total_spent decimal(18, 2), as_of_date date)"
    )
    result = run(checks.columns_match_contract(CONTRACT), conn)
    assert (result.check_name, result.severity) == ("columns_match_contract", ERROR)
    assert_passes(result)


@pytest.mark.parametrize(
    "columns, offender",
    [
        pytest.param(
            "customer_id bigint, total_spent decimal(18, 2)",
            {"column_name": "as_of_date", "expected_type": "DATE", "actual_type": ""},
            id="missing column",
        ),
        pytest.param(
            "customer_id bigint, total_spent decimal(18, 2), as_of_date date, email varchar",
            {"column_name": "email", "expected_type": "", "actual_type": "VARCHAR"},
            id="extra column",
        ),
        pytest.param(
            "customer_id bigint, total_spent double, as_of_date date",
            {
                "column_name": "total_spent",
                "expected_type": "DECIMAL(18,2)",
                "actual_type": "DOUBLE",
            },
            id="wrong type",
        ),
        pytest.param(
            "customer_id bigint, total_spent decimal(18, 3), as_of_date date",
            {
                "column_name": "total_spent",
                "expected_type": "DECIMAL(18,2)",
                "actual_type": "DECIMAL(18,3)",
            },
            id="wrong scale",
        ),
    ],
)
def test_columns_match_contract_fails_on_a_column_off_contract(conn, columns, offender):
    conn.execute(f"create table test.t ({columns})")
    assert_fails(run(checks.columns_match_contract(CONTRACT), conn), 1, offender)


def test_columns_match_contract_reads_only_the_checked_database(conn, tmp_path):
    # A run's new version has the published version attached (read-only), where the same
    # table may still have the columns of an older contract: only the new one is checked.
    older = tmp_path / "published.duckdb"
    with duckdb.connect(str(older)) as published:
        published.execute("create schema test")
        published.execute("create table test.t (customer_id integer, email varchar)")
    conn.execute(f"attach '{older}' as published (read_only)")
    conn.execute(
        "create table test.t (customer_id bigint, total_spent decimal(18, 2), as_of_date date)"
    )
    assert_passes(run(checks.columns_match_contract(CONTRACT), conn))


# --- unique_not_null --------------------------------------------------------------------------


def test_unique_not_null_passes_on_unique_keys(conn):
    conn.execute("create table test.t as from (values (1), (2), (3)) v(customer_id)")
    result = run(checks.unique_not_null("customer_id"), conn)
    assert (result.check_name, result.severity) == ("customer_id_is_unique_and_not_null", ERROR)
    assert_passes(result)


def test_unique_not_null_fails_once_per_duplicated_or_null_key(conn):
    conn.execute(
        "create table test.t as from (values (1), (1), (2), (3), (3), (3), (null)) v(customer_id)"
    )
    # Keys 1 (2 rows), 3 (3 rows) and null (1 row) fail: 3 failing rows, one per key.
    assert_fails(
        run(checks.unique_not_null("customer_id"), conn),
        3,
        {"customer_id": "1", "rows": "2"},
        {"customer_id": "3", "rows": "3"},
        {"customer_id": "", "rows": "1"},
    )


def test_composite_unique_not_null(conn):
    check = checks.unique_not_null("order_id", "item_id")
    assert check.name == "order_id_item_id_is_unique_and_not_null"
    conn.execute("create table test.t as from (values (1, 1), (1, 2), (2, 1)) v(order_id, item_id)")
    assert_passes(run(check, conn))

    conn.execute("insert into test.t values (1, 2), (2, null)")  # (1, 2) twice; (2, null)
    assert_fails(
        run(check, conn),
        2,
        {"order_id": "1", "item_id": "2", "rows": "2"},
        {"order_id": "2", "item_id": "", "rows": "1"},
    )


# Order lines, and which keys repeat or have a null (worked out by hand): small, large,
# negative and null line numbers, and an order without an id.
LINES = [
    (1, 1),
    (1, 2),
    (1, 3),  # fine
    (2, 1),
    (2, 1),
    (2, 2),  # line 1 twice
    (3, 70),
    (3, 70),  # line 70 twice
    (4, 64),
    (4, 0),
    (4, 63),  # fine
    (5, None),  # a null line
    (None, 1),  # a null order
    (6, -1),
    (6, -1),
    (6, 1),  # line -1 twice
    (7, 2**40),
    (7, 2**40 + 2),  # fine: large numbers
    (9, None),
    (9, None),  # a null line, twice
]
REPEATED_OR_NULL = {(2, 1, 2), (3, 70, 2), (5, None, 1), (None, 1, 1), (6, -1, 2), (9, None, 2)}


def test_composite_unique_not_null_finds_every_repeated_or_null_key(conn):
    conn.execute("create table test.t (order_id bigint, item_id bigint)")
    conn.executemany("insert into test.t values (?, ?)", LINES)
    check = checks.unique_not_null("order_id", "item_id")

    assert set(conn.execute(check.sql("test.t")).fetchall()) == REPEATED_OR_NULL
    assert_fails(run(check, conn), len(REPEATED_OR_NULL))


@pytest.mark.parametrize(
    ("kind", "lines", "repeated"),
    [
        ("double", [(1, 1.5), (1, 2.0), (2, 1.5), (2, 1.5)], {(2, 1.5, 2)}),
        (
            "varchar",
            [("South", "Gold"), ("South", "Silver"), ("West", "Gold"), ("West", "Gold")],
            {("West", "Gold", 2)},
        ),
    ],
)
def test_composite_unique_not_null_on_keys_that_are_not_whole_numbers(conn, kind, lines, repeated):
    conn.execute(
        f"create table test.t (order_id {'varchar' if kind == 'varchar' else 'bigint'}, "
        f"item_id {kind})"
    )
    conn.executemany("insert into test.t values (?, ?)", lines)
    check = checks.unique_not_null("order_id", "item_id")
    assert set(conn.execute(check.sql("test.t")).fetchall()) == repeated


def random_id(rng: random.Random) -> int | None:
    """An id for the random tests: small (-70..70, often repeated), huge, or null."""
    roll = rng.random()
    return None if roll < 0.05 else rng.randint(-70, 70) if roll < 0.7 else rng.getrandbits(62)


@pytest.mark.parametrize("seed", range(5))
def test_unique_not_null_agrees_with_counting_keys_in_python(conn, seed):
    rng = random.Random(seed)
    rows = [(random_id(rng), random_id(rng)) for _ in range(300)]
    rows += rng.sample(rows, 60)
    conn.execute("create table test.t (order_id bigint, item_id bigint)")
    conn.executemany("insert into test.t values (?, ?)", rows)
    for columns, keys in (
        (("order_id", "item_id"), Counter(rows)),
        (("order_id",), Counter((order_id,) for order_id, _ in rows)),
    ):
        expected = {(*key, n) for key, n in keys.items() if n > 1 or None in key}
        found = conn.execute(checks.unique_not_null(*columns).sql("test.t"))
        assert set(found.fetchall()) == expected


# --- relationships ----------------------------------------------------------------------------


@pytest.fixture
def stg_customers(conn):
    conn.execute("create schema staging")
    conn.execute("create table staging.stg_customers as from (values (1), (2)) v(customer_id)")


def test_relationships_passes_when_every_value_exists_and_ignores_nulls(conn, stg_customers):
    conn.execute(
        "create table test.t as from (values (1, 1), (2, 2), (3, null)) v(order_id, customer_id)"
    )
    result = run(checks.relationships("customer_id", "stg_customers"), conn)
    assert (result.check_name, result.severity) == ("customer_id_exists_in_stg_customers", ERROR)
    assert_passes(result)


def test_relationships_fails_once_per_unknown_value(conn, stg_customers):
    conn.execute(
        "create table test.t as from (values (1, 1), (2, 99), (3, 99), (4, 98)) "
        "v(order_id, customer_id)"
    )
    # Customers 99 (orders 2 and 3) and 98 (order 4) do not exist: 2 failing values.
    assert_fails(
        run(checks.relationships("customer_id", "stg_customers"), conn),
        2,
        {"customer_id": "99", "rows": "2"},
        {"customer_id": "98", "rows": "1"},
    )


@pytest.mark.parametrize("seed", range(5))
def test_relationships_agrees_with_looking_ids_up_in_python(conn, seed):
    rng = random.Random(seed)
    parents = {random_id(rng) for _ in range(80)}
    children = [random_id(rng) for _ in range(200)] + rng.sample(sorted(parents - {None}), 20)
    conn.execute("create schema staging")
    conn.execute("create table staging.stg_customers (customer_id bigint)")
    conn.executemany("insert into staging.stg_customers values (?)", [(v,) for v in parents])
    conn.execute("create table test.t (customer_id bigint)")
    conn.executemany("insert into test.t values (?)", [(v,) for v in children])
    missing = Counter(v for v in children if v is not None and v not in parents)

    check = checks.relationships("customer_id", "stg_customers")
    assert dict(conn.execute(check.sql("test.t")).fetchall()) == missing


# --- accepted_values --------------------------------------------------------------------------

REGIONS = ("Northeast", "Midwest", "South", "West", "Unknown")


def test_accepted_values_passes_on_allowed_values(conn):
    conn.execute(
        "create table test.t as from (values ('Northeast'), ('South'), ('Unknown')) v(region)"
    )
    result = run(checks.accepted_values("region", REGIONS), conn)
    assert (result.check_name, result.severity) == ("region_is_allowed", ERROR)
    assert_passes(result)


def test_accepted_values_fails_on_other_values_and_on_null(conn):
    conn.execute(
        "create table test.t as from "
        "(values ('South'), ('Atlantis'), ('Atlantis'), ('south'), (null)) v(region)"
    )
    # 'Atlantis' (2 rows), 'south' (case matters) and null: 3 failing values.
    assert_fails(
        run(checks.accepted_values("region", REGIONS), conn),
        3,
        {"region": "Atlantis", "rows": "2"},
        {"region": "south", "rows": "1"},
        {"region": "", "rows": "1"},
    )


def test_accepted_values_nullable_lets_null_through(conn):
    check = checks.accepted_values("ltv_segment", ("Gold", "Bronze"), nullable=True)
    conn.execute("create table test.t as from (values ('Gold'), (null)) v(ltv_segment)")
    assert_passes(run(check, conn))
    conn.execute("insert into test.t values ('VIP')")
    assert_fails(run(check, conn), 1, {"ltv_segment": "VIP"})


# --- not_negative -----------------------------------------------------------------------------


def test_not_negative(conn):
    check = checks.not_negative("total_order_net_price", "total_items")
    assert (check.name, check.severity) == ("no_negative_amounts", ERROR)
    conn.execute(
        "create table test.t "
        "(order_id bigint, total_order_net_price decimal(18, 2), total_items bigint)"
    )
    conn.execute("insert into test.t values (1, 0.00, 0), (2, 10.50, 3), (3, null, null)")
    assert_passes(run(check, conn))

    conn.execute("insert into test.t values (4, -0.01, 1), (5, 5.00, -1), (6, -1.00, -1)")
    # Order 4 has a negative price, 5 negative items, 6 both: 3 failing rows.
    assert_fails(
        run(check, conn),
        3,
        {"order_id": "4", "total_order_net_price": "-0.01"},
        {"order_id": "5", "total_items": "-1"},
        {"order_id": "6"},
    )


# --- customer_segment_is_valid ----------------------------------------------------------------

SEGMENT_TABLE = (
    "create table test.t (customer_id bigint, total_orders bigint, total_spent decimal(18, 2), "
    "customer_segment varchar)"
)


def test_customer_segment_passes_on_the_rules_at_their_boundaries(conn):
    conn.execute(SEGMENT_TABLE)
    conn.execute(
        """
        insert into test.t values
            (1, 10, 5000.00, 'VIP'),      -- both VIP cut-offs reached exactly
            (2, 9, 5000.00, 'Loyal'),     -- one order short of VIP; Loyal's 5 and 2000 met
            (3, 10, 4999.99, 'Loyal'),    -- a cent short of VIP
            (4, 5, 2000.00, 'Loyal'),     -- both Loyal cut-offs reached exactly
            (5, 5, 1999.99, 'Regular'),   -- a cent short of Loyal; 2 orders or more
            (6, 4, 9000.00, 'Regular'),   -- rich but too few orders for Loyal
            (7, 2, 0.00, 'Regular'),
            (8, 1, 100000.00, 'New'),     -- one order is New whatever the amount
            (9, null, null, 'New')        -- no orders
        """
    )
    result = run(declared(CUSTOMERS_ENRICHED, "customer_segment_is_valid"), conn)
    assert (result.check_name, result.severity) == ("customer_segment_is_valid", ERROR)
    assert_passes(result)


def test_customer_segment_fails_on_a_label_its_metrics_contradict(conn):
    conn.execute(SEGMENT_TABLE)
    conn.execute(
        """
        insert into test.t values
            (1, 10, 5000.00, 'VIP'),
            (10, 10, 5000.00, 'Loyal'),   -- 10 orders and 5000.00 is VIP
            (11, 1, 10.00, 'Gold'),       -- not a customer segment (New)
            (12, null, null, null)        -- without orders the segment is New, not null
        """
    )
    assert_fails(
        run(declared(CUSTOMERS_ENRICHED, "customer_segment_is_valid"), conn),
        3,
        {"customer_id": "10", "customer_segment": "Loyal", "expected_segment": "VIP"},
        {"customer_id": "11", "customer_segment": "Gold", "expected_segment": "New"},
        {"customer_id": "12", "customer_segment": "", "expected_segment": "New"},
    )


# --- ltv_segment_is_valid ---------------------------------------------------------------------

TIER_TABLE = (
    "create table test.t (customer_id bigint, total_spent decimal(18, 2), ltv_segment varchar)"
)


def test_ltv_segment_passes_on_the_tiers_at_their_boundaries(conn):
    conn.execute(TIER_TABLE)
    conn.execute(
        """
        insert into test.t values
            (1, 10000.00, 'Platinum'), (2, 9999.99, 'Gold'), (3, 5000.00, 'Gold'),
            (4, 4999.99, 'Silver'), (5, 1000.00, 'Silver'), (6, 999.99, 'Bronze'),
            (7, 0.00, 'Bronze'), (8, null, null)
        """
    )
    result = run(declared(CUSTOMERS_ENRICHED, "ltv_segment_is_valid"), conn)
    assert (result.check_name, result.severity) == ("ltv_segment_is_valid", ERROR)
    assert_passes(result)


def test_ltv_segment_fails_on_a_tier_its_total_contradicts(conn):
    conn.execute(TIER_TABLE)
    conn.execute(
        """
        insert into test.t values
            (1, 10000.00, 'Platinum'),
            (9, 10000.00, 'Gold'),    -- 10000.00 is Platinum
            (10, null, 'Bronze'),     -- no orders: no tier
            (11, 500.00, null),       -- has spent: Bronze
            (12, 50.00, 'VIP')        -- not a tier
        """
    )
    assert_fails(
        run(declared(CUSTOMERS_ENRICHED, "ltv_segment_is_valid"), conn),
        4,
        {"customer_id": "9", "ltv_segment": "Gold", "expected_tier": "Platinum"},
        {"customer_id": "10", "ltv_segment": "Bronze", "expected_tier": ""},
        {"customer_id": "11", "ltv_segment": "", "expected_tier": "Bronze"},
        {"customer_id": "12", "ltv_segment": "VIP", "expected_tier": "Bronze"},
    )


# --- summary customers_add_up -----------------------------------------------------------------


def with_customers(conn: duckdb.DuckDBPyConnection, rows: str) -> None:
    conn.execute("create schema if not exists marts")
    conn.execute(
        f"create or replace table marts.customers_enriched as from (values {rows}) "
        "v(customer_id, total_orders)"
    )


def summary(conn: duckdb.DuckDBPyConnection, rows: str) -> dg.AssetCheckResult:
    conn.execute(
        "create or replace table test.t "
        "(region varchar, customer_segment varchar, num_customers bigint)"
    )
    if rows:
        conn.execute(f"insert into test.t values {rows}")
    return run(declared(REGION_SEGMENT_SUMMARY, "customers_add_up"), conn)


def test_summary_customers_add_up(conn):
    # Customers 1 and 2 have orders, 3 has none: 2 customers with orders.
    with_customers(conn, "(1, 2), (2, 1), (3, null)")
    result = summary(conn, "('Northeast', 'Bronze', 1), ('South', 'Silver', 1)")  # 1 + 1 = 2
    assert (result.check_name, result.severity) == ("customers_add_up", ERROR)
    assert_passes(result)


def test_summary_customers_fail_to_add_up(conn):
    with_customers(conn, "(1, 2), (2, 1), (3, null)")
    result = summary(conn, "('Northeast', 'Bronze', 2), ('South', 'Silver', 1)")  # 3 <> 2
    assert_fails(result, 1, {"summarized": "3", "with_orders": "2"})
    assert_fails(summary(conn, ""), 1, {"summarized": "0", "with_orders": "2"})


def test_empty_summary_adds_up_when_no_customer_has_orders(conn):
    with_customers(conn, "(3, null)")
    assert_passes(summary(conn, ""))


# --- money_adds_up ----------------------------------------------------------------------------


@pytest.fixture
def orders(conn):
    conn.execute("create schema intermediate")
    conn.execute(
        "create table intermediate.orders_enriched "
        "(order_id bigint, order_date date, total_order_net_price decimal(18, 2))"
    )
    conn.execute(
        """
        insert into intermediate.orders_enriched values
            (1, '2024-01-01', 0.27), (2, '2024-02-01', 190.00), (3, '2024-03-01', 479.99),
            (4, '2025-01-01', 1000.00)  -- after the as-of date: not in the customers' totals
        """
    )


def money(
    conn: duckdb.DuckDBPyConnection, as_of: str, spent_by_customer_1: str
) -> dg.AssetCheckResult:
    conn.execute(
        "create or replace table test.t "
        "(customer_id bigint, total_spent decimal(18, 2), as_of_date date)"
    )
    conn.execute(
        f"insert into test.t values (1, {spent_by_customer_1}, '{as_of}'), "
        f"(2, 479.99, '{as_of}'), (3, null, '{as_of}')"
    )
    return run(declared(CUSTOMERS_ENRICHED, "money_adds_up"), conn)


def test_money_adds_up_over_the_orders_up_to_as_of_date(conn, orders):
    # Orders up to 2024-12-31: 0.27 + 190.00 + 479.99 = 670.26 = 190.27 + 479.99 (order 4 out).
    result = money(conn, "2024-12-31", "190.27")
    assert (result.check_name, result.severity) == ("money_adds_up", ERROR)
    assert_passes(result)


def test_money_fails_to_add_up_by_a_cent(conn, orders):
    # 190.28 + 479.99 = 670.27 <> 670.26
    assert_fails(
        money(conn, "2024-12-31", "190.28"),
        1,
        {
            "as_of_date": "2024-12-31",
            "orders_net_price": "670.26",
            "customers_total_spent": "670.27",
        },
    )


def test_money_counts_orders_up_to_the_tables_as_of_date(conn, orders):
    # As of 2025-01-01, order 4 counts: 670.26 + 1000.00 = 1670.26 <> 670.26.
    assert_fails(
        money(conn, "2025-01-01", "190.27"),
        1,
        {"orders_net_price": "1670.26", "customers_total_spent": "670.26"},
    )


# --- dates_in_order ---------------------------------------------------------------------------


def test_dates_in_order(conn):
    conn.execute(
        "create table test.t (customer_id bigint, first_order_date date, last_order_date date, "
        "as_of_date date)"
    )
    conn.execute(
        """
        insert into test.t values
            (1, '2024-01-01', '2024-02-01', '2024-12-31'),
            (2, '2024-12-31', '2024-12-31', '2024-12-31'),  -- all equal is in order
            (3, null, null, '2024-12-31')                   -- no orders
        """
    )
    check = declared(CUSTOMERS_ENRICHED, "dates_in_order")
    result = run(check, conn)
    assert (result.check_name, result.severity) == ("dates_in_order", ERROR)
    assert_passes(result)

    conn.execute(
        """
        insert into test.t values
            (4, '2024-05-01', '2024-04-01', '2024-12-31'),  -- first after last
            (5, '2024-01-01', '2025-01-01', '2024-12-31')   -- last after as_of
        """
    )
    assert_fails(
        run(check, conn),
        2,
        {"customer_id": "4", "first_order_date": "2024-05-01"},
        {"customer_id": "5", "last_order_date": "2025-01-01"},
    )


# --- layers agree -----------------------------------------------------------------------------


def test_layers_agree_names():
    names = {table: check.name for table, check in LAYERS_AGREE.items()}
    assert names["intermediate.orders_enriched"] == "same_order_ids_as_stg_orders"
    assert names["marts.customers_enriched"] == "same_customer_ids_as_stg_customers"


def test_layers_agree_fails_on_a_missing_extra_or_repeated_key(conn, stg_customers):
    # stg_customers has customers 1 and 2.
    check = LAYERS_AGREE["marts.customers_enriched"]
    conn.execute("create table test.t as from (values (2), (1)) v(customer_id)")
    result = run(check, conn)
    assert (result.check_name, result.severity) == ("same_customer_ids_as_stg_customers", ERROR)
    assert_passes(result)

    # Customer 1 left out, 2 twice, 3 not a staged customer: 3 failing keys.
    conn.execute("create or replace table test.t as from (values (2), (2), (3)) v(customer_id)")
    assert_fails(
        run(check, conn),
        3,
        {"customer_id": "1", "rows_here": "0", "rows_in_stg_customers": "1"},
        {"customer_id": "2", "rows_here": "2", "rows_in_stg_customers": "1"},
        {"customer_id": "3", "rows_here": "1", "rows_in_stg_customers": "0"},
    )


# --- Suspicious, not wrong: WARN --------------------------------------------------------------


def test_orders_have_lines_warns(conn):
    conn.execute(
        "create table test.t as from (values (1, 1, date '2024-01-01', 2)) "
        "v(order_id, customer_id, order_date, total_items)"
    )
    check = declared(ORDERS_ENRICHED, "orders_have_lines")
    result = run(check, conn)
    assert (result.check_name, result.severity) == ("orders_have_lines", WARN)
    assert_passes(result)

    conn.execute("insert into test.t values (2, 1, '2024-02-01', 0)")
    result = run(check, conn)
    assert result.severity == WARN
    assert_fails(result, 1, {"order_id": "2", "customer_id": "1", "order_date": "2024-02-01"})


def test_delivery_dates_known_warns_on_each_unknown_delivery(conn):
    conn.execute(
        "create table test.t (order_id bigint, order_date date, required_date date, "
        "shipped_date date, delivery_status varchar)"
    )
    conn.execute(
        """
        insert into test.t values
            (1, '2024-01-01', '2024-01-03', '2024-01-02', 'On Time'),
            (2, '2024-01-01', '2024-01-03', '2024-01-04', 'Late'),
            (3, '2024-01-01', null, null, 'Pending')          -- not shipped: nothing to judge
        """
    )
    check = declared(ORDERS_ENRICHED, "delivery_dates_known")
    result = run(check, conn)
    assert (result.check_name, result.severity) == ("delivery_dates_known", WARN)
    assert_passes(result)

    conn.execute(
        """
        insert into test.t values
            (4, '2024-01-01', null, '2024-01-02', 'Unknown'),          -- no required date
            (5, '2024-01-10', '2024-01-20', '2024-01-08', 'Unknown')   -- shipped before placed
        """
    )
    assert_fails(
        run(check, conn),
        2,
        {"order_id": "4", "required_date": "", "shipped_date": "2024-01-02"},
        {"order_id": "5", "order_date": "2024-01-10", "shipped_date": "2024-01-08"},
    )


def test_lines_not_counted_warns_on_each_line_of_quantity_zero_or_less(conn):
    conn.execute(
        "create table test.t as from (values (1, 1, 10, 1), (1, 2, 11, 3)) "
        "v(order_id, item_id, product_id, quantity)"
    )
    check = declared(STG_ORDER_ITEMS, "lines_not_counted")
    result = run(check, conn)
    assert (result.check_name, result.severity) == ("lines_not_counted", WARN)
    assert_passes(result)

    conn.execute("insert into test.t values (2, 1, 12, 0), (2, 2, 13, -2)")
    assert_fails(
        run(check, conn),
        2,
        {"order_id": "2", "item_id": "1", "quantity": "0"},
        {"order_id": "2", "item_id": "2", "product_id": "13", "quantity": "-2"},
    )


def test_regions_are_known_warns_once_per_unknown_state(conn):
    conn.execute(
        "create table test.t as from (values (1, 'NY', 'Northeast')) v(customer_id, state, region)"
    )
    check = declared(STG_CUSTOMERS, "regions_are_known")
    result = run(check, conn)
    assert (result.check_name, result.severity) == ("regions_are_known", WARN)
    assert_passes(result)

    conn.execute(
        "insert into test.t values (2, 'ZZ', 'Unknown'), (3, 'ZZ', 'Unknown'), (4, 'PR', 'Unknown')"
    )
    result = run(check, conn)
    assert result.severity == WARN
    # States ZZ (2 customers) and PR (1): 2 failing rows.
    assert_fails(result, 2, {"state": "ZZ", "customers": "2"}, {"state": "PR", "customers": "1"})


def test_no_rejected_rows_warns(conn):
    conn.execute(
        "create table test.t (file varchar, line bigint, key varchar, column_name varchar, "
        "reason varchar)"
    )
    check = declared(REJECTED_ROWS, "no_rejected_rows")
    result = run(check, conn)
    assert (result.check_name, result.severity) == ("no_rejected_rows", WARN)
    assert_passes(result)

    conn.execute(
        """
        insert into test.t values
            ('orders.csv', 7, 'order_id=6', 'customer_id', 'customer_id 99 does not exist'),
            ('order_items.csv', 3, 'order_id=1, item_id=2', 'list_price', 'list_price 1.001')
        """
    )
    result = run(check, conn)
    assert result.severity == WARN
    assert_fails(
        result,
        2,
        {"file": "orders.csv", "line": "7", "key": "order_id=6"},
        {"file": "order_items.csv", "line": "3"},
    )


# --- The checks attached to the tables, on a hand-made warehouse ------------------------------

# The TINY_EXPORT of conftest, as the pipeline should publish it, computed by hand:
# order 1 = 2 x 0.135 = 0.27, order 2 = 2 x 100 x 0.95 = 190.00, order 3 = 599.99 x 0.8 = 479.99;
# customer 1: 2 orders, 190.27 (avg 95.135 -> 95.14), last 2024-02-01, 334 days before 2024-12-31,
# primary store 2 (one order each, store 2 has the latest); customer 2: 1 order, 479.99, 305 days;
# summary Northeast/Bronze: 2 customers, (190.27 + 479.99) / 2 = 335.13, (2 + 1) / 2 = 1.50.
GOOD_ROWS = {
    "stg_customers": """
        (1, 'Debra', 'Burks', 'e1', null, 'Orchard Park', 'NY', '14127', 'Northeast', 'female'),
        (2, 'Daryl', 'Spence', 'e2', 'p2', 'Uniondale', 'NY', '11553', 'Northeast', 'unknown'),
        (3, 'Zyx', 'Quenby', 'e3', null, 'Houston', 'TX', '07001', 'South', 'unknown')
    """,
    "stg_stores": """
        (1, 'Santa Cruz Bikes', '3700 Portola Drive', 'Santa Cruz', 'CA', '95060'),
        (2, 'Baldwin Bikes', '4200 Chestnut Lane', 'Baldwin', 'NY', '11432')
    """,
    "stg_orders": """
        (1, 1, 4, '2024-01-01', '2024-01-03', '2024-01-02', 1, 2),
        (2, 1, 4, '2024-02-01', '2024-02-03', '2024-02-05', 2, 6),
        (3, 2, 1, '2024-03-01', '2024-03-03', null, 2, 6)
    """,
    "stg_order_items": """
        (1, 1, 10, 1, 0.15, 0.10), (1, 2, 11, 1, 0.15, 0.10), (2, 1, 12, 2, 100.00, 0.05),
        (3, 1, 13, 1, 599.99, 0.20)
    """,
    "rejected_rows": "",
    "orders_enriched": """
        (1, 1, 1, 'Santa Cruz Bikes', 2, 4, 'Completed', '2024-01-01', '2024-01-03', '2024-01-02',
         'On Time', 1, 2, 2, 0.27),
        (2, 1, 2, 'Baldwin Bikes', 6, 4, 'Completed', '2024-02-01', '2024-02-03', '2024-02-05',
         'Late', 4, 2, 1, 190.00),
        (3, 2, 2, 'Baldwin Bikes', 6, 1, 'Pending', '2024-03-01', '2024-03-03', null,
         'Pending', null, 1, 1, 479.99)
    """,
    "customers_enriched": """
        (1, 'female', 'e1', 'Orchard Park', 'NY', 'Northeast', 2, 'Baldwin Bikes', 2, 190.27,
         95.14, '2024-01-01', '2024-02-01', 4, 334, 'Regular', 'Bronze', '2024-12-31'),
        (2, 'unknown', 'e2', 'Uniondale', 'NY', 'Northeast', 2, 'Baldwin Bikes', 1, 479.99,
         479.99, '2024-03-01', '2024-03-01', 1, 305, 'New', 'Bronze', '2024-12-31'),
        (3, 'unknown', 'e3', 'Houston', 'TX', 'South', null, null, null, null,
         null, null, null, null, null, 'New', null, '2024-12-31')
    """,
    "region_segment_summary": "('Northeast', 'Bronze', 2, 335.13, 1.50)",
}

# One way to break each table check: (table, check, SQL, failing rows, a sample row's cells).
# fmt: off
BREAKS = [
    ("stg_customers", "columns_match_contract",
     "alter table staging.stg_customers add column email varchar", 1,
     {"column_name": "email", "expected_type": ""}),
    ("stg_customers", "customer_id_is_unique_and_not_null",
     "insert into staging.stg_customers select * from staging.stg_customers where customer_id = 1",
     1, {"customer_id": "1", "rows": "2"}),
    ("stg_customers", "region_is_allowed",
     "update staging.stg_customers set region = 'Atlantis' where customer_id = 3", 1,
     {"region": "Atlantis"}),
    ("stg_customers", "gender_is_allowed",
     "update staging.stg_customers set gender = 'F' where customer_id = 1", 1, {"gender": "F"}),
    ("stg_customers", "regions_are_known",
     "update staging.stg_customers set state = 'ZZ', region = 'Unknown' where customer_id = 3", 1,
     {"state": "ZZ", "customers": "1"}),
    ("stg_stores", "columns_match_contract",
     "alter table staging.stg_stores drop column street", 1,
     {"column_name": "street", "actual_type": ""}),
    ("stg_stores", "store_id_is_unique_and_not_null",
     "insert into staging.stg_stores values (null, 'Nowhere', null, null, null, null)", 1,
     {"store_id": ""}),
    ("stg_orders", "columns_match_contract",
     "alter table staging.stg_orders alter order_date type varchar", 1,
     {"column_name": "order_date", "expected_type": "DATE", "actual_type": "VARCHAR"}),
    ("stg_orders", "order_id_is_unique_and_not_null",
     "update staging.stg_orders set order_id = 1 where order_id = 3", 1,
     {"order_id": "1", "rows": "2"}),
    ("stg_orders", "customer_id_exists_in_stg_customers",
     "update staging.stg_orders set customer_id = 99 where order_id = 3", 1,
     {"customer_id": "99"}),
    ("stg_orders", "store_id_exists_in_stg_stores",
     "update staging.stg_orders set store_id = 7 where order_id in (2, 3)", 1,
     {"store_id": "7", "rows": "2"}),
    ("stg_order_items", "columns_match_contract",
     "alter table staging.stg_order_items alter list_price type double", 1,
     {"column_name": "list_price", "actual_type": "DOUBLE"}),
    ("stg_order_items", "order_id_item_id_is_unique_and_not_null",
     "insert into staging.stg_order_items values (1, 2, 11, 1, 0.15, 0.10)", 1,
     {"order_id": "1", "item_id": "2", "rows": "2"}),
    ("stg_order_items", "order_id_exists_in_stg_orders",
     "insert into staging.stg_order_items values (42, 1, 10, 1, 1.00, 0)", 1, {"order_id": "42"}),
    # A negative quantity is a return (kept, lines_not_counted); a negative price is wrong.
    ("stg_order_items", "no_negative_amounts",
     "update staging.stg_order_items set list_price = -100.00 where order_id = 2", 1,
     {"order_id": "2", "list_price": "-100.00"}),
    ("stg_order_items", "lines_not_counted",
     "update staging.stg_order_items set quantity = -1 where order_id = 2", 1,
     {"order_id": "2", "item_id": "1", "quantity": "-1"}),
    ("rejected_rows", "columns_match_contract",
     "alter table staging.rejected_rows drop column reason", 1, {"column_name": "reason"}),
    ("rejected_rows", "no_rejected_rows",
     "insert into staging.rejected_rows values ('orders.csv', 5, 'order_id=4', 'store_id', 'x')",
     1, {"file": "orders.csv", "line": "5"}),
    ("orders_enriched", "columns_match_contract",
     "alter table intermediate.orders_enriched drop column days_to_ship", 1,
     {"column_name": "days_to_ship", "expected_type": "BIGINT"}),
    ("orders_enriched", "order_id_is_unique_and_not_null",
     "update intermediate.orders_enriched set order_id = 1 where order_id = 2", 1,
     {"order_id": "1", "rows": "2"}),
    ("orders_enriched", "customer_id_exists_in_stg_customers",
     "update intermediate.orders_enriched set customer_id = 4 where order_id = 3", 1,
     {"customer_id": "4"}),
    ("orders_enriched", "store_id_exists_in_stg_stores",
     "update intermediate.orders_enriched set store_id = 3 where order_id = 1", 1,
     {"store_id": "3"}),
    ("orders_enriched", "delivery_status_is_allowed",
     "update intermediate.orders_enriched set delivery_status = 'Shipped' where order_id = 1", 1,
     {"delivery_status": "Shipped"}),
    ("orders_enriched", "no_negative_amounts",
     "update intermediate.orders_enriched set total_order_net_price = -0.27 where order_id = 1", 1,
     {"order_id": "1", "total_order_net_price": "-0.27"}),
    ("orders_enriched", "same_order_ids_as_stg_orders",
     "delete from intermediate.orders_enriched where order_id = 3", 1,
     {"order_id": "3", "rows_here": "0", "rows_in_stg_orders": "1"}),
    ("orders_enriched", "orders_have_lines",
     "update intermediate.orders_enriched set total_items = 0 where order_id = 3", 1,
     {"order_id": "3"}),
    ("orders_enriched", "delivery_dates_known",
     "update intermediate.orders_enriched set required_date = null, delivery_status = 'Unknown' "
     "where order_id = 2", 1,
     {"order_id": "2", "required_date": "", "shipped_date": "2024-02-05"}),
    ("customers_enriched", "columns_match_contract",
     "alter table marts.customers_enriched alter total_spent type double", 1,
     {"column_name": "total_spent", "expected_type": "DECIMAL(18,2)", "actual_type": "DOUBLE"}),
    ("customers_enriched", "customer_id_is_unique_and_not_null",
     "update marts.customers_enriched set customer_id = 2 where customer_id = 3", 1,
     {"customer_id": "2", "rows": "2"}),
    ("customers_enriched", "customer_segment_is_valid",
     "update marts.customers_enriched set customer_segment = 'VIP' where customer_id = 2", 1,
     {"customer_id": "2", "customer_segment": "VIP", "expected_segment": "New"}),
    ("customers_enriched", "ltv_segment_is_valid",
     "update marts.customers_enriched set ltv_segment = 'Gold' where customer_id = 1", 1,
     {"customer_id": "1", "ltv_segment": "Gold", "expected_tier": "Bronze"}),
    ("customers_enriched", "no_negative_amounts",
     "update marts.customers_enriched set avg_order_value = -95.14 where customer_id = 1", 1,
     {"customer_id": "1", "avg_order_value": "-95.14"}),
    # 0.27 + 190.00 + 479.99 = 670.26 in the orders; 190.00 + 479.99 = 669.99 in the customers.
    ("customers_enriched", "money_adds_up",
     "update marts.customers_enriched set total_spent = 190.00 where customer_id = 1", 1,
     {"orders_net_price": "670.26", "customers_total_spent": "669.99"}),
    ("customers_enriched", "dates_in_order",
     "update marts.customers_enriched set first_order_date = '2024-03-02' where customer_id = 2",
     1, {"customer_id": "2", "first_order_date": "2024-03-02"}),
    ("customers_enriched", "same_customer_ids_as_stg_customers",
     "insert into staging.stg_customers values "
     "(4, 'Ann', 'Lee', 'e4', null, 'Austin', 'TX', '73301', 'South', 'female')", 1,
     {"customer_id": "4", "rows_here": "0", "rows_in_stg_customers": "1"}),
    ("region_segment_summary", "columns_match_contract",
     "alter table marts.region_segment_summary add column avg_items double", 1,
     {"column_name": "avg_items", "actual_type": "DOUBLE"}),
    ("region_segment_summary", "customer_segment_is_allowed",
     "update marts.region_segment_summary set customer_segment = 'Regular'", 1,
     {"customer_segment": "Regular"}),
    ("region_segment_summary", "region_customer_segment_is_unique_and_not_null",
     "insert into marts.region_segment_summary values ('Northeast', 'Bronze', 0, 0, 0)", 1,
     {"region": "Northeast", "customer_segment": "Bronze", "rows": "2"}),
    ("region_segment_summary", "customers_add_up",
     "update marts.region_segment_summary set num_customers = 3", 1,
     {"summarized": "3", "with_orders": "2"}),
    ("region_segment_summary", "no_negative_amounts",
     "update marts.region_segment_summary set avg_ltv = -335.13", 1, {"avg_ltv": "-335.13"}),
]
# fmt: on


@pytest.fixture
def warehouse() -> Iterator[duckdb.DuckDBPyConnection]:
    """Every published table, with the contract's columns and the hand-made rows above."""
    with duckdb.connect() as conn:
        for table in TABLES:
            columns = ", ".join(f"{name} {kind}" for name, kind, _ in table.columns)
            conn.execute(f"create schema if not exists {table.layer}")
            conn.execute(f"create table {table.relation} ({columns})")
            if GOOD_ROWS[table.name]:
                conn.execute(f"insert into {table.relation} values {GOOD_ROWS[table.name]}")
        yield conn


def audit(conn: duckdb.DuckDBPyConnection, table_name: str, check_name: str) -> dg.AssetCheckResult:
    """Run a table's check as the audit job does: on the published tables."""
    table = next(t for t in TABLES if t.name == table_name)
    return evaluate_check(declared(table, check_name), conn, table.key, table.relation)


CHECKS_BY_TABLE = [(t.name, c.name) for t in TABLES for c in TABLE_CHECKS[t.key]]


def test_every_table_check_has_a_break():
    assert sorted((table, check) for table, check, *_ in BREAKS) == sorted(CHECKS_BY_TABLE)


@pytest.mark.parametrize(
    "table, check", CHECKS_BY_TABLE, ids=[f"{t}/{c}" for t, c in CHECKS_BY_TABLE]
)
def test_table_check_passes_on_the_hand_made_warehouse(warehouse, table, check):
    assert_passes(audit(warehouse, table, check))


@pytest.mark.parametrize(
    "table, check, sql, failing_rows, offender",
    BREAKS,
    ids=[f"{table}/{check}" for table, check, *_ in BREAKS],
)
def test_table_check_fails_on_a_hand_made_break(
    warehouse, table, check, sql, failing_rows, offender
):
    warehouse.execute(sql)
    assert_fails(audit(warehouse, table, check), failing_rows, offender)


def test_only_the_suspicious_checks_are_warn():
    warn = {(t.name, c.name) for t in TABLES for c in TABLE_CHECKS[t.key] if c.severity == WARN}
    assert warn == {
        ("stg_customers", "regions_are_known"),
        ("stg_order_items", "lines_not_counted"),
        ("rejected_rows", "no_rejected_rows"),
        ("orders_enriched", "orders_have_lines"),
        ("orders_enriched", "delivery_dates_known"),
    }


def test_error_checks_block_and_warn_checks_do_not():
    severity = {
        dg.AssetCheckKey(t.key, c.name): c.severity for t in TABLES for c in TABLE_CHECKS[t.key]
    }
    specs = [spec for asset in ASSETS for spec in asset.check_specs]
    assert sorted(spec.key.to_user_string() for spec in specs) == sorted(
        key.to_user_string() for key in severity
    )  # every table check is declared on its asset, once
    for spec in specs:
        assert spec.blocking == (severity[spec.key] == ERROR), spec.key
