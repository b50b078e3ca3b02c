"""The spec's business rules, each a SQL expression builder named after the rule (tables.md)."""

import hashlib
from pathlib import Path

import duckdb

REFERENCE_DIR = Path(__file__).parent / "reference"

CUSTOMER_SEGMENTS = ("VIP", "Loyal", "Regular", "New")
LTV_SEGMENTS = ("Platinum", "Gold", "Silver", "Bronze")
CENSUS_REGIONS = ("Northeast", "Midwest", "South", "West", "Unknown")
GENDERS = ("female", "male", "unknown")
ORDER_STATUS_LABELS = {1: "Pending", 2: "Processing", 3: "Rejected", 4: "Completed"}
DELIVERY_STATUSES = ("On Time", "Late", "Pending")


def sql_list(values: tuple[str, ...]) -> str:
    """SQL literal list: ('a', 'b')."""
    return "(" + ", ".join(f"'{value}'" for value in values) + ")"


# --- staging.stg_customers -------------------------------------------------------------------


def load_reference_tables(conn: duckdb.DuckDBPyConnection) -> None:
    """Temp tables census_regions(state, region) and first_name_genders(first_name, gender)."""
    for name in ("us_census_regions", "first_name_genders"):
        conn.execute(
            f"create or replace temp table {name} as "
            "select * from read_csv(?, header = true, all_varchar = true)",
            [str(REFERENCE_DIR / f"{name}.csv")],
        )


def census_region(region_lookup: str) -> str:
    """Region of a state from the census lookup (joined as region_lookup); else Unknown."""
    return f"coalesce({region_lookup}.region, 'Unknown')"


def gender(gender_lookup: str) -> str:
    """Gender from the shipped first-name lookup (joined as gender_lookup); else unknown."""
    return f"coalesce({gender_lookup}.gender, 'unknown')"


def normalized_email(column: str) -> str:
    """Email trimmed and lower-cased, the form that is hashed."""
    return f"nullif(lower(trim({column})), '')"


def normalized_phone(column: str) -> str:
    """Phone digits only (null when it has none), the form that is hashed."""
    return f"nullif(regexp_replace({column}, '[^0-9]', '', 'g'), '')"


def set_pii_key(conn: duckdb.DuckDBPyConnection, key: bytes) -> None:
    """Give the connection the HMAC-SHA256 pads of the key (RFC 2104), used by keyed_hash."""
    block = hashlib.sha256(key).digest() if len(key) > 64 else key
    block = block.ljust(64, b"\0")
    conn.execute("set variable pii_inner_pad = ?::blob", [bytes(b ^ 0x36 for b in block)])
    conn.execute("set variable pii_outer_pad = ?::blob", [bytes(b ^ 0x5C for b in block)])


def keyed_hash(value: str) -> str:
    """HMAC-SHA256 of a text value as hex (null stays null), in plain SQL so it scales."""
    inner = f"unhex(sha256(getvariable('pii_inner_pad') || encode({value})))"
    return f"sha256(getvariable('pii_outer_pad') || {inner})"


# --- intermediate.orders_enriched --------------------------------------------------------------


def order_status_label(status: str) -> str:
    """1 Pending, 2 Processing, 3 Rejected, 4 Completed."""
    cases = " ".join(f"when {code} then '{label}'" for code, label in ORDER_STATUS_LABELS.items())
    return f"case {status} {cases} end"


def delivery_status(shipped_date: str, required_date: str) -> str:
    """On Time when shipped on or before the required date, Late when after, Pending unshipped."""
    return (
        f"case when {shipped_date} is null then 'Pending' "
        f"when {shipped_date} <= {required_date} then 'On Time' else 'Late' end"
    )


def days_between(earlier: str, later: str) -> str:
    """Whole days from earlier to later (null when either is null)."""
    return f"date_diff('day', {earlier}, {later})"


def line_net_price(list_price: str, quantity: str, discount: str) -> str:
    """An order line's exact net price: list_price * quantity * (1 - discount), in decimal."""
    return f"cast({list_price} * {quantity} * (1 - {discount}) as decimal(38, 8))"


def cents_half_up(amount: str) -> str:
    """Round a non-negative exact decimal half-up to cents."""
    return f"cast(round({amount}, 2) as decimal(18, 2))"


def divide_half_up(numerator: str, denominator: str) -> str:
    """numerator / denominator rounded half-up to 2 decimals, exactly (integer arithmetic).

    The numerator has at most 2 decimals and is non-negative; the denominator is a positive
    whole number. Null when the denominator is null or 0.
    """
    hundredths = f"cast({numerator} * 100 as hugeint)"
    divisor = f"cast(nullif({denominator}, 0) as hugeint)"
    quotient = f"(2 * {hundredths} + {divisor}) // (2 * {divisor})"
    return f"cast(cast({quotient} as decimal(38, 0)) * 0.01 as decimal(18, 2))"


# --- marts.customers_enriched ----------------------------------------------------------------


def customer_segment(total_orders: str, total_spent: str) -> str:
    """VIP, Loyal, Regular or New, checked in that order; no orders is New."""
    return (
        f"case when {total_orders} >= 10 and {total_spent} >= 5000 then 'VIP' "
        f"when {total_orders} >= 5 and {total_spent} >= 2000 then 'Loyal' "
        f"when {total_orders} >= 2 then 'Regular' else 'New' end"
    )


def ltv_segment(total_spent: str) -> str:
    """Lifetime-value tier: Platinum >= 10000, Gold >= 5000, Silver >= 1000, else Bronze."""
    return (
        f"case when {total_spent} is null then null "
        f"when {total_spent} >= 10000 then 'Platinum' when {total_spent} >= 5000 then 'Gold' "
        f"when {total_spent} >= 1000 then 'Silver' else 'Bronze' end"
    )


def primary_store_rank(orders_at_store: str, latest_order_at_store: str, store_id: str) -> str:
    """Rank 1 is the customer's primary store: most orders, then latest order, then lowest id."""
    return (
        f"row_number() over (partition by customer_id order by {orders_at_store} desc, "
        f"{latest_order_at_store} desc, {store_id} asc)"
    )
