"""Unit tests of each business rule of rules.py, evaluated by DuckDB on hand-made values."""

import hashlib
import hmac
from decimal import Decimal

import duckdb
import pytest

from bike_assets import rules


def evaluate(expression: str, conn: duckdb.DuckDBPyConnection | None = None, **columns: str):
    """The value of a rule's SQL over one row whose columns are SQL literals (typed with ::)."""
    row = ", ".join(f"{literal} as {name}" for name, literal in columns.items())
    conn = conn or duckdb.connect()
    return conn.execute(f"select {expression} from (select {row})").fetchone()[0]


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
    expression = rules.customer_segment("o", "s")
    assert evaluate(expression, o=f"{orders}::bigint", s=f"{spent}::decimal(38, 2)") == segment


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
    assert evaluate(rules.ltv_segment("s"), s=f"{spent}::decimal(38, 2)") == tier


def test_primary_store_rank() -> None:
    # (customer, store, orders there, latest order there) -> the store ranked 1 per customer:
    # 1: 2 orders at store 1, 2 at store 2 (latest 04-01) -> store 2 (tie on count, latest wins)
    # 2: 2 at store 3, 2 at store 2, same latest 06-10 -> store 2 (then lowest store_id)
    # 3: 3 at store 1 (latest 03-02), 1 at store 2 (latest 04-02) -> store 1 (most orders wins)
    rank = rules.primary_store_rank("n", "latest", "store_id")
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
    rounded = evaluate(rules.cents_half_up("a"), a=f"{amount}::decimal(38, 8)")
    assert isinstance(rounded, Decimal)
    assert rounded == Decimal(cents)


@pytest.mark.parametrize(
    ("numerator", "denominator", "quotient"),
    [
        ("190.27", "2", Decimal("95.14")),  # 95.135 -> 95.14
        ("190.25", "2", Decimal("95.13")),  # 95.125 -> 95.13 (half-even would give 95.12)
        ("100.00", "3", Decimal("33.33")),  # 33.333...
        ("200.00", "3", Decimal("66.67")),  # 66.666...
        ("1.00", "8", Decimal("0.13")),  # 0.125 -> 0.13
        ("3999.99", "2", Decimal("2000.00")),  # 1999.995 -> 2000.00
        ("11", "3", Decimal("3.67")),  # 3.666... (an average of whole orders)
        ("0.00", "4", Decimal("0.00")),
        ("5.00", "0", None),  # no denominator: null, not an error
        ("5.00", "null", None),
    ],
)
def test_divide_half_up(numerator: str, denominator: str, quotient: Decimal | None) -> None:
    expression = rules.divide_half_up("n", "d")
    result = evaluate(expression, n=f"{numerator}::decimal(38, 2)", d=f"{denominator}::bigint")
    assert result == quotient
    assert quotient is None or isinstance(result, Decimal)


def test_line_net_price_is_exact_decimal() -> None:
    def net(price: str, quantity: int, discount: str) -> Decimal:
        # Typed as staging types them: list_price DECIMAL(18,2), quantity INTEGER, discount
        # DECIMAL(18,6).
        return evaluate(
            rules.line_net_price("p", "q", "d"),
            p=f"{price}::decimal(18, 2)",
            q=f"{quantity}::integer",
            d=f"{discount}::decimal(18, 6)",
        )

    assert net("0.15", 1, "0.10") == Decimal("0.135")  # 0.15 * 1 * 0.90 = 0.135 exactly
    assert net("11999.99", 4, "0.07") == Decimal("44639.9628")  # 11999.99 * 3.72
    assert net("100.00", 2, "0.05") == Decimal("190.00")  # 200 * 0.95
    assert net("599.99", 0, "0.20") == Decimal("0")
    # One rounding per order: two lines of 0.135 make 0.27 (rounding each line: 0.28).
    order = duckdb.execute(
        f"select {rules.cents_half_up('sum(' + rules.line_net_price('p', 'q', 'd') + ')')} "
        "from (values (0.15::decimal(18, 2), 1, 0.10::decimal(18, 6)), (0.15, 1, 0.10)) "
        "t(p, q, d)"
    ).fetchone()[0]
    assert order == Decimal("0.27")


# --- orders_enriched: status, delivery, days -------------------------------------------------


@pytest.mark.parametrize(
    ("status", "label"), [(1, "Pending"), (2, "Processing"), (3, "Rejected"), (4, "Completed")]
)
def test_order_status_label(status: int, label: str) -> None:
    assert evaluate(rules.order_status_label("s"), s=f"{status}::integer") == label


@pytest.mark.parametrize(
    ("shipped", "status"),
    [
        ("date '2024-01-02'", "On Time"),  # a day before the required date
        ("date '2024-01-03'", "On Time"),  # on the required date
        ("date '2024-01-04'", "Late"),  # a day after
        ("null::date", "Pending"),  # not shipped
    ],
)
def test_delivery_status(shipped: str, status: str) -> None:
    expression = rules.delivery_status("shipped", "required")
    assert evaluate(expression, shipped=shipped, required="date '2024-01-03'") == status


@pytest.mark.parametrize(
    ("earlier", "later", "days"),
    [
        ("2024-02-28", "2024-03-01", 2),  # 2024 is a leap year: 02-29 in between
        ("2023-02-28", "2023-03-01", 1),
        ("2024-03-05", "2024-12-31", 301),  # day 65 -> day 366 of 2024
        ("2024-01-01", "2024-01-01", 0),
        ("2024-01-01", None, None),  # not shipped
    ],
)
def test_days_between(earlier: str, later: str | None, days: int | None) -> None:
    later_sql = f"date '{later}'" if later else "null::date"
    expression = rules.days_between("a", "b")
    assert evaluate(expression, a=f"date '{earlier}'", b=later_sql) == days


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
def test_normalized_email(raw: str | None, normalized: str | None) -> None:
    conn = duckdb.connect()
    value = conn.execute(f"select {rules.normalized_email('?::varchar')}", [raw]).fetchone()[0]
    assert value == normalized


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
def test_normalized_phone(raw: str | None, normalized: str | None) -> None:
    conn = duckdb.connect()
    value = conn.execute(f"select {rules.normalized_phone('?::varchar')}", [raw]).fetchone()[0]
    assert value == normalized


@pytest.mark.parametrize(
    "key",
    [
        b"test-key",  # shorter than SHA-256's 64-byte block: zero-padded
        b"k" * 64,  # exactly one block
        b"a much longer secret key, " * 4,  # 104 bytes > 64: the key is hashed first (RFC 2104)
    ],
)
@pytest.mark.parametrize("message", ["debra.burks@yahoo.com", "9163816003", "josé@café.fr", ""])
def test_keyed_hash_is_hmac_sha256(key: bytes, message: str) -> None:
    conn = duckdb.connect()
    rules.set_pii_key(conn, key)
    value = conn.execute(f"select {rules.keyed_hash('?::varchar')}", [message]).fetchone()[0]
    assert value == hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()


def test_keyed_hash_keeps_null_and_depends_on_key() -> None:
    conn = duckdb.connect()
    rules.set_pii_key(conn, b"test-key")
    expression = rules.keyed_hash("?::varchar")
    assert conn.execute(f"select {expression}", [None]).fetchone()[0] is None
    first = conn.execute(f"select {expression}", ["9163816003"]).fetchone()[0]
    rules.set_pii_key(conn, b"other-key")
    assert conn.execute(f"select {expression}", ["9163816003"]).fetchone()[0] != first


# --- staging: reference data -----------------------------------------------------------------


def test_census_regions_and_genders_reference() -> None:
    conn = duckdb.connect()
    rules.load_reference_tables(conn)
    # The Census Bureau's regions: 9 Northeast, 12 Midwest, 16 South + DC, 13 West states.
    counts = dict(
        conn.execute("select region, count(*) from us_census_regions group by 1").fetchall()
    )
    assert counts == {"Northeast": 9, "Midwest": 12, "South": 17, "West": 13}
    region = rules.census_region("r")
    states = conn.execute(
        f"select s.state, {region} from (values ('NY'), ('TX'), ('CA'), ('IL'), ('DC'), ('ZZ')) "
        "s(state) left join us_census_regions r using (state) order by s.state"
    ).fetchall()
    assert states == [
        ("CA", "West"),
        ("DC", "South"),
        ("IL", "Midwest"),
        ("NY", "Northeast"),
        ("TX", "South"),
        ("ZZ", "Unknown"),
    ]
    gender = rules.gender("g")
    genders = conn.execute(
        f"select n.name, {gender} from (values ('debra'), ('james'), ('zyx'), ('jordan')) "
        "n(name) left join first_name_genders g on g.first_name = n.name order by n.name"
    ).fetchall()
    # Jordan is in both the female and the male list, so it is left out: unknown.
    assert genders == [
        ("debra", "female"),
        ("james", "male"),
        ("jordan", "unknown"),
        ("zyx", "unknown"),
    ]
