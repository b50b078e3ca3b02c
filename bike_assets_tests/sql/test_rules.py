"""Each business rule of sql/macros/rules.sql, expanded as the models expand it and evaluated
by DuckDB on hand-made values; and the orders_enriched model on tiny hand-made tables."""

import hashlib
import hmac
import random
from collections.abc import Iterator
from decimal import Decimal

import duckdb
import pytest

from bike_assets.defs.intermediate import ORDERS_ENRICHED
from bike_assets.defs.staging import STG_CUSTOMERS, STG_ORDER_ITEMS, STG_ORDERS, STG_STORES
from bike_assets.lib import pii
from bike_assets.lib.reference import load_reference_tables
from bike_assets.lib.specs import Table
from bike_assets.lib.sql import _environment, expand, render

D = Decimal


def evaluate(call: str, conn: duckdb.DuckDBPyConnection | None = None, **columns: str):
    """The value of a macro over one row whose columns are SQL literals (typed with ::)."""
    row = ", ".join(f"{literal} as {name}" for name, literal in columns.items())
    conn = conn or duckdb.connect()
    return conn.execute(f"select {expand(call)} from (select {row})").fetchone()[0]


@pytest.fixture
def conn() -> Iterator[duckdb.DuckDBPyConnection]:
    with duckdb.connect() as conn:
        yield conn


# Every macro of rules.sql, each tested below.
TESTED_MACROS = {
    "customer_segment",
    "ltv_segment",
    "primary_store_rank",
    "cents_half_up",
    "divide_half_up",
    "line_net_price",
    "counts_toward_order",
    "order_status_label",
    "delivery_status",
    "days_to_ship",
    "days_between",
    "normalized_email",
    "normalized_phone",
    "keyed_hash",
    "census_region",
    "gender",
}


def test_every_macro_of_rules_sql_is_tested() -> None:
    module = _environment().get_template("macros/rules.sql").module
    macros = {name for name in dir(module) if not name.startswith("_")}
    assert macros == TESTED_MACROS


# --- customers_enriched: segments and tiers --------------------------------------------------


@pytest.mark.parametrize(
    ("orders", "spent", "segment"),
    [
        ("10", "5000.00", "VIP"),  # both thresholds met exactly
        ("9", "5000.00", "Loyal"),  # one order short of VIP; 9 >= 5 and 5000 >= 2000
        ("10", "4999.99", "Loyal"),  # one cent short of VIP
        ("5", "2000.00", "Loyal"),  # both Loyal thresholds met exactly
        ("5", "1999.99", "Regular"),  # one cent short of Loyal; 5 >= 2
        ("4", "99999.00", "Regular"),  # one order short of Loyal, whatever the spend
        ("2", "0.00", "Regular"),
        ("1", "10000.00", "New"),  # a single order is New, whatever the spend
        ("null", "null", "New"),  # a customer without orders
    ],
)
def test_customer_segment(orders: str, spent: str, segment: str) -> None:
    call = "customer_segment('o', 's')"
    assert evaluate(call, o=f"{orders}::bigint", s=f"{spent}::decimal(38, 2)") == segment


@pytest.mark.parametrize(
    ("spent", "tier"),
    [
        ("10000.00", "Platinum"),
        ("9999.99", "Gold"),
        ("5000.00", "Gold"),
        ("4999.99", "Silver"),
        ("1000.00", "Silver"),
        ("999.99", "Bronze"),
        ("0.00", "Bronze"),
        ("null", None),  # no orders: no tier
    ],
)
def test_ltv_segment(spent: str, tier: str | None) -> None:
    assert evaluate("ltv_segment('s')", s=f"{spent}::decimal(38, 2)") == tier


def test_primary_store_rank() -> None:
    # (customer, store, orders there, latest order there) -> the store ranked 1 per customer:
    # 1: 2 orders at store 1, 2 at store 2 (latest 04-01) -> store 2 (tie on count, latest wins)
    # 2: 2 at store 3, 2 at store 2, same latest 06-10 -> store 2 (then lowest store_id)
    # 3: 3 at store 1 (latest 03-02), 1 at store 2 (latest 04-02) -> store 1 (most orders wins)
    rank = expand("primary_store_rank('customer_id', 'n', 'latest', 'store_id')")
    ranked = duckdb.execute(
        f"""
        select customer_id, store_id from (
            select *, {rank} as r from (values
                (1, 1, 2, date '2024-02-01'), (1, 2, 2, date '2024-04-01'),
                (2, 3, 2, date '2024-06-10'), (2, 2, 2, date '2024-06-10'),
                (3, 1, 3, date '2024-03-02'), (3, 2, 1, date '2024-04-02')
            ) t(customer_id, store_id, n, latest)
        ) where r = 1 order by customer_id
        """
    ).fetchall()
    assert ranked == [(1, 2), (2, 2), (3, 1)]


# --- money: exact decimals, half-up ----------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "cents"),
    [
        ("0.135", "0.14"),  # half-up (half-even would give 0.14 too)
        ("0.125", "0.13"),  # half-up, not half-even (0.12)
        ("2.675", "2.68"),  # as a float 2.675 is 2.67499999..., which rounds to 2.67
        ("0.13499999", "0.13"),
        ("190.27", "190.27"),
        ("0", "0.00"),
    ],
)
def test_cents_half_up(amount: str, cents: str) -> None:
    rounded = evaluate("cents_half_up('a')", a=f"{amount}::decimal(38, 8)")
    assert isinstance(rounded, Decimal)
    assert rounded == Decimal(cents)


@pytest.mark.parametrize(
    ("numerator", "denominator", "quotient"),
    [
        ("190.27", "2", D("95.14")),  # 95.135 -> 95.14
        ("190.25", "2", D("95.13")),  # 95.125 -> 95.13 (half-even would give 95.12)
        ("100.00", "3", D("33.33")),  # 33.333...
        ("200.00", "3", D("66.67")),  # 66.666...
        ("1.00", "8", D("0.13")),  # 0.125 -> 0.13
        ("3999.99", "2", D("2000.00")),  # 1999.995 -> 2000.00
        ("11", "3", D("3.67")),  # 3.666... (an average of whole orders)
        ("0.00", "4", D("0.00")),
        ("5.00", "0", None),  # no denominator: null, not an error
        ("5.00", "null", None),
    ],
)
def test_divide_half_up(numerator: str, denominator: str, quotient: Decimal | None) -> None:
    call = "divide_half_up('n', 'd')"
    result = evaluate(call, n=f"{numerator}::decimal(38, 2)", d=f"{denominator}::bigint")
    assert result == quotient
    assert quotient is None or isinstance(result, Decimal)


def test_line_net_price_is_exact_decimal() -> None:
    def net(price: str, quantity: int, discount: str) -> Decimal:
        # Typed as staging types them: list_price DECIMAL(18,2), quantity INTEGER, discount
        # DECIMAL(18,6).
        return evaluate(
            "line_net_price('p', 'q', 'd')",
            p=f"{price}::decimal(18, 2)",
            q=f"{quantity}::integer",
            d=f"{discount}::decimal(18, 6)",
        )

    assert net("0.15", 1, "0.10") == D("0.135")  # 0.15 * 1 * 0.90 = 0.135 exactly
    assert net("11999.99", 4, "0.07") == D("44639.9628")  # 11999.99 * 3.72
    assert net("100.00", 2, "0.05") == D("190.00")  # 200 * 0.95
    assert net("599.99", 0, "0.20") == D("0")
    assert net("599.99", 3, "1") == D("0")  # discount 1: a free item
    assert net("10.00", 1, "0.333333") == D("6.66667")  # 10 * 0.666667, six decimals kept
    # One rounding per order: two lines of 0.135 make 0.27 (rounding each line: 0.28).
    order_total = expand(
        "cents_half_up('sum(' ~ line_net_price('p', 'q', 'd') ~ ')')"  # as orders_enriched
    )
    order = duckdb.execute(
        f"select {order_total} "
        "from (values (0.15::decimal(18, 2), 1, 0.10::decimal(18, 6)), (0.15, 1, 0.10)) "
        "t(p, q, d)"
    ).fetchone()[0]
    assert order == D("0.27")


@pytest.mark.parametrize(
    ("quantity", "counts"),
    [("1", True), ("12", True), ("0", False), ("-1", False), ("-3", False)],
)
def test_counts_toward_order(quantity: str, counts: bool) -> None:
    # Lines with quantity <= 0 (returns, cancelled lines) are ignored by orders_enriched.
    assert evaluate("counts_toward_order('q')", q=f"{quantity}::integer") is counts


# --- orders_enriched: status, delivery, days -------------------------------------------------


@pytest.mark.parametrize(
    ("status", "label"), [(1, "Pending"), (2, "Processing"), (3, "Rejected"), (4, "Completed")]
)
def test_order_status_label(status: int, label: str) -> None:
    assert evaluate("order_status_label('s')", s=f"{status}::integer") == label


def day(text: str | None) -> str:
    return f"date '{text}'" if text else "null::date"


@pytest.mark.parametrize(
    ("ordered", "required", "shipped", "status"),
    [
        ("2024-01-01", "2024-01-03", "2024-01-02", "On Time"),  # a day before the required date
        ("2024-01-01", "2024-01-03", "2024-01-03", "On Time"),  # on the required date
        ("2024-01-01", "2024-01-03", "2024-01-01", "On Time"),  # the day it was placed
        ("2024-01-01", "2024-01-03", "2024-01-04", "Late"),  # a day after
        ("2024-01-01", "2024-01-03", None, "Pending"),  # not shipped
        ("2024-01-01", None, None, "Pending"),  # not shipped, no required date
        ("2024-01-01", None, "2024-01-02", "Unknown"),  # shipped, no required date
        ("2024-01-01", "2024-01-03", "2023-12-31", "Unknown"),  # shipped before it was placed
        ("2024-01-10", "2024-01-05", "2024-01-08", "Unknown"),  # same, required before placed
        ("2024-01-01", None, "2023-12-31", "Unknown"),  # both
    ],
)
def test_delivery_status(ordered: str, required: str | None, shipped: str | None, status: str):
    call = "delivery_status('ordered', 'required', 'shipped')"
    values = {"ordered": day(ordered), "required": day(required), "shipped": day(shipped)}
    assert evaluate(call, **values) == status


@pytest.mark.parametrize(
    ("ordered", "shipped", "days"),
    [
        ("2024-02-28", "2024-03-01", 2),  # 2024 is a leap year: 02-29 in between
        ("2023-02-28", "2023-03-01", 1),
        ("2023-12-30", "2024-01-02", 3),  # across the new year
        ("2024-01-01", "2024-01-01", 0),  # shipped the day it was placed
        ("2024-01-01", None, None),  # not shipped
        ("2024-01-02", "2024-01-01", None),  # shipped before it was placed: -1 is null
        ("2024-03-01", "2023-03-01", None),  # -366: null
    ],
)
def test_days_to_ship(ordered: str, shipped: str | None, days: int | None) -> None:
    value = evaluate("days_to_ship('o', 's')", o=day(ordered), s=day(shipped))
    assert value == days


@pytest.mark.parametrize(
    ("earlier", "later", "days"),
    [
        ("2024-02-28", "2024-03-01", 2),  # 2024 is a leap year: 02-29 in between
        ("2023-02-28", "2023-03-01", 1),
        ("2024-03-05", "2024-12-31", 301),  # day 65 -> day 366 of 2024
        ("2024-01-01", "2024-01-01", 0),
        ("2024-01-01", None, None),  # no later date
    ],
)
def test_days_between(earlier: str, later: str | None, days: int | None) -> None:
    assert evaluate("days_between('a', 'b')", a=day(earlier), b=day(later)) == days


# --- staging: PII normalization and keyed hash ----------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        (" Debra.Burks@Yahoo.com ", "debra.burks@yahoo.com"),
        ("DARYL.SPENCE@AOL.COM", "daryl.spence@aol.com"),
        ("   ", None),
        ("", None),
        (None, None),
    ],
)
def test_normalized_email(raw: str | None, normalized: str | None, conn) -> None:
    sql = "select " + expand("normalized_email('?::varchar')")
    assert conn.execute(sql, [raw]).fetchone()[0] == normalized


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("(916) 381-6003", "9163816003"),
        ("+1 916.381.6003", "19163816003"),
        ("NULL", None),  # the export's missing-value text has no digit
        ("n/a", None),
        ("", None),
        (None, None),
    ],
)
def test_normalized_phone(raw: str | None, normalized: str | None, conn) -> None:
    sql = "select " + expand("normalized_phone('?::varchar')")
    assert conn.execute(sql, [raw]).fetchone()[0] == normalized


@pytest.mark.parametrize(
    "key",
    [
        b"test-key",  # shorter than SHA-256's 64-byte block: zero-padded
        b"k" * 64,  # exactly one block
        b"a much longer secret key, " * 4,  # 104 bytes > 64: the key is hashed first (RFC 2104)
    ],
)
@pytest.mark.parametrize("message", ["debra.burks@yahoo.com", "9163816003", "josé@café.fr", ""])
def test_keyed_hash_is_hmac_sha256(key: bytes, message: str, conn) -> None:
    pii.set_key(conn, key)
    value = conn.execute("select " + expand("keyed_hash('?::varchar')"), [message]).fetchone()[0]
    # Python's hmac module: an independent route to the same HMAC-SHA256.
    assert value == hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()


def test_keyed_hash_of_a_normalized_value(conn) -> None:
    # As stg_customers nests them: the hash of the normalized email.
    pii.set_key(conn, b"test-key")
    call = "keyed_hash(normalized_email('?::varchar'))"
    value = conn.execute(f"select {expand(call)}", [" Debra.Burks@Yahoo.com "]).fetchone()[0]
    assert value == hmac.new(b"test-key", b"debra.burks@yahoo.com", hashlib.sha256).hexdigest()


def test_keyed_hash_keeps_null_and_depends_on_key(conn) -> None:
    pii.set_key(conn, b"test-key")
    sql = "select " + expand("keyed_hash('?::varchar')")
    assert conn.execute(sql, [None]).fetchone()[0] is None
    first = conn.execute(sql, ["9163816003"]).fetchone()[0]
    pii.set_key(conn, b"other-key")
    assert conn.execute(sql, ["9163816003"]).fetchone()[0] != first


# --- staging: reference data -----------------------------------------------------------------


def test_census_regions_and_genders_reference(conn) -> None:
    conn.execute("create schema work")
    load_reference_tables(conn)
    # The Census Bureau's regions: 9 Northeast, 12 Midwest, 16 South + DC, 13 West states.
    counts = dict(
        conn.execute("select region, count(*) from work.us_census_regions group by 1").fetchall()
    )
    assert counts == {"Northeast": 9, "Midwest": 12, "South": 17, "West": 13}
    region = expand("census_region('r.region')")
    states = conn.execute(
        f"select s.state, {region} from (values ('NY'), ('TX'), ('CA'), ('IL'), ('DC'), ('ZZ')) "
        "s(state) left join work.us_census_regions r using (state) order by s.state"
    ).fetchall()
    assert states == [
        ("CA", "West"),
        ("DC", "South"),
        ("IL", "Midwest"),
        ("NY", "Northeast"),
        ("TX", "South"),
        ("ZZ", "Unknown"),
    ]
    gender = expand("gender('g.gender')")
    genders = conn.execute(
        f"select n.name, {gender} from (values ('debra'), ('james'), ('zyx'), ('jordan')) "
        "n(name) left join work.first_name_genders g on g.first_name = n.name order by n.name"
    ).fetchall()
    # Jordan is in both the female and the male list, so it is left out: unknown.
    assert genders == [
        ("debra", "female"),
        ("james", "male"),
        ("jordan", "unknown"),
        ("zyx", "unknown"),
    ]


# --- the orders_enriched model on tiny tables ------------------------------------------------


def create(conn: duckdb.DuckDBPyConnection, table: Table, rows: str) -> None:
    """The table as its contract declares it, with hand-made rows (SQL values)."""
    columns = ", ".join(f"{name} {kind}" for name, kind, _ in table.columns)
    conn.execute(f"create schema if not exists {table.layer}")
    conn.execute(f"create table {table.relation} ({columns})")
    if rows:
        conn.execute(f"insert into {table.relation} values {rows}")


@pytest.fixture
def orders_enriched(conn) -> dict[int, dict[str, object]]:
    """intermediate.orders_enriched built by its model on hand-made staging tables."""
    create(conn, STG_CUSTOMERS, "(1, 'A', 'B', 'e', null, 'Town', 'NY', '10001', 'Northeast', 'x')")
    create(conn, STG_STORES, "(1, 'Santa Cruz Bikes', 's', 'c', 'CA', '95060')")
    create(
        conn,
        STG_ORDERS,
        """
        (1, 1, 4, '2024-01-01', '2024-01-03', '2024-01-02', 1, 2),  -- On Time, 1 day
        (2, 1, 4, '2024-01-01', null, '2024-01-05', 1, 2),          -- no required date
        (3, 1, 4, '2024-01-10', '2024-01-20', '2024-01-08', 1, 2),  -- shipped before placed
        (4, 1, 1, '2024-01-10', null, null, 1, 2),                  -- not shipped
        (5, 1, 3, '2024-01-10', '2024-01-12', '2024-01-15', 1, 2)   -- Late, 5 days
        """,
    )
    create(
        conn,
        STG_ORDER_ITEMS,
        """
        (1, 1, 10, 2, 100.00, 0.10),   -- 180.00
        (1, 2, 11, 1, 50.00, 1),       -- a free item: 1 unit, 0.00
        (1, 3, 12, 0, 999.99, 0),      -- quantity 0: ignored
        (1, 4, 13, -2, 30.00, 0),      -- a return: ignored
        (2, 1, 10, -1, 100.00, 0),     -- order 2's only line is a return: no counted line
        (3, 1, 14, 3, 19.99, 0.05)     -- 3 * 19.99 * 0.95 = 56.9715 -> 56.97
        """,
    )
    conn.execute("create schema intermediate")
    model = render("intermediate/orders_enriched")
    conn.execute(f"create table intermediate.orders_enriched as {model}")
    cursor = conn.execute("from intermediate.orders_enriched order by order_id")
    names = [column[0] for column in cursor.description]
    return {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}


def test_orders_enriched_has_the_contract_columns(conn, orders_enriched) -> None:
    columns = conn.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_name = 'orders_enriched' order by ordinal_position"
    ).fetchall()
    assert columns == [(name, kind) for name, kind, _ in ORDERS_ENRICHED.columns]


def test_orders_enriched_ignores_lines_of_quantity_zero_or_less(orders_enriched) -> None:
    figures = {
        order_id: (row["total_items"], row["unique_products"], row["total_order_net_price"])
        for order_id, row in orders_enriched.items()
    }
    assert figures == {
        1: (3, 2, D("180.00")),  # 2 + 1 units (the free item counts), products 10 and 11
        2: (0, 0, D("0.00")),  # its only line is a return: like an order without lines
        3: (3, 1, D("56.97")),
        4: (0, 0, D("0.00")),  # no lines at all
        5: (0, 0, D("0.00")),
    }
    assert all(isinstance(net, Decimal) for _, _, net in figures.values())


@pytest.mark.parametrize("seed", range(5))
def test_unique_products_agrees_with_counting_products_in_python(conn, seed: int) -> None:
    """orders_enriched's unique_products (a mask of product ids, counted exactly where it
    cannot tell) on random lines: products repeated in an order, ids sharing a bit (10 and 42),
    negative and huge ids, lines without a product, returns."""
    rng = random.Random(seed)
    products = [None, -3, -35, 10, 42, 74, 11, 2**40, 2**40 + 32, *range(20)]
    lines = [
        (order, item, rng.choice(products), rng.randint(-1, 3))
        for order in range(1, 201)
        for item in range(1, rng.randint(0, 8) + 1)
    ]
    create(conn, STG_STORES, "(1, 'Santa Cruz Bikes', 's', 'c', 'CA', '95060')")
    create(
        conn,
        STG_ORDERS,
        ", ".join(f"({o}, 1, 4, '2024-01-01', null, null, 1, 2)" for o in range(1, 201)),
    )
    create(
        conn,
        STG_ORDER_ITEMS,
        ", ".join(
            f"({o}, {i}, {'null' if p is None else p}, {q}, 1.00, 0)" for o, i, p, q in lines
        ),
    )
    model = render("intermediate/orders_enriched")
    found = dict(conn.execute(f"select order_id, unique_products from ({model})").fetchall())
    expected = {
        order: len({p for o, _, p, q in lines if o == order and q > 0 and p is not None})
        for order in range(1, 201)
    }
    assert found == expected
    assert max(expected.values()) >= 5


def test_orders_enriched_delivery_status_and_days_to_ship(orders_enriched) -> None:
    delivery = {
        order_id: (row["order_status_label"], row["delivery_status"], row["days_to_ship"])
        for order_id, row in orders_enriched.items()
    }
    assert delivery == {
        1: ("Completed", "On Time", 1),
        2: ("Completed", "Unknown", 4),  # no required date; 01-01 -> 01-05 is 4 days
        3: ("Completed", "Unknown", None),  # shipped 2 days before it was placed: not -2
        4: ("Pending", "Pending", None),
        5: ("Rejected", "Late", 5),
    }
    assert {row["store_name"] for row in orders_enriched.values()} == {"Santa Cruz Bikes"}
