"""marts.customers_enriched: the 360° customer profile as of the run's as-of date."""

from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
import duckdb

from bike_assets.defs.intermediate import ORDERS_ENRICHED
from bike_assets.defs.resources import BusinessCalendar, Warehouse
from bike_assets.defs.staging import STG_CUSTOMERS
from bike_assets.lib import checks
from bike_assets.lib.checks import LAYERS_AGREE
from bike_assets.lib.specs import Table
from bike_assets.lib.sql import date_literal, render
from bike_assets.lib.warehouse import Model
from bike_assets.tools.charts import segment_mix_chart

CUSTOMER_SEGMENTS = ("VIP", "Loyal", "Regular", "New")
LTV_SEGMENTS = ("Platinum", "Gold", "Silver", "Bronze")

CUSTOMERS_ENRICHED = Table(
    "marts",
    "customers_enriched",
    "Enriches customer data by aggregating their order activity and introducing behavioral "
    "metrics and segmentation labels: a 360° customer profile as of as_of_date. Every customer "
    "is kept; a customer without orders has null metrics, no store and segment New. Use it to "
    "find high-value customers (VIP, Loyal) for retention, to segment marketing, to follow "
    "recency (days_since_last_order) and to link behavior to gender and location.",
    [
        ("customer_id", "BIGINT", "Customer key."),
        ("gender", "VARCHAR", "female, male or unknown."),
        ("email_hash", "VARCHAR", "Keyed hash of the email (no email in clear)."),
        ("city", "VARCHAR", "City."),
        ("state", "VARCHAR", "State code."),
        ("region", "VARCHAR", "US Census region, or Unknown."),
        ("store_id", "BIGINT", "Primary store: most orders, then latest order, then lowest id."),
        ("store_name", "VARCHAR", "Name of the primary store."),
        ("total_orders", "BIGINT", "Orders placed up to as_of_date."),
        ("total_spent", "DECIMAL(18,2)", "Sum of the orders' total_order_net_price."),
        ("avg_order_value", "DECIMAL(18,2)", "total_spent / total_orders, half-up to cents."),
        ("first_order_date", "DATE", "Date of the first order."),
        ("last_order_date", "DATE", "Date of the most recent order."),
        ("total_items_purchased", "BIGINT", "Sum of the orders' total_items."),
        ("days_since_last_order", "BIGINT", "as_of_date - last_order_date in days."),
        ("customer_segment", "VARCHAR", "VIP, Loyal, Regular or New (see the contract)."),
        ("ltv_segment", "VARCHAR", "Platinum, Gold, Silver or Bronze; null without orders."),
        ("as_of_date", "DATE", "The logical date of the run: orders after it are left out."),
    ],
    [
        "customer_id",
        "region",
        "customer_segment",
        "ltv_segment",
        "total_orders",
        "total_spent",
        "avg_order_value",
        "last_order_date",
    ],
    deps=[STG_CUSTOMERS.key, ORDERS_ENRICHED.key],
)

CUSTOMERS_ENRICHED_CHECKS = {
    CUSTOMERS_ENRICHED.key: [
        checks.columns_match_contract(CUSTOMERS_ENRICHED),
        checks.unique_not_null("customer_id"),
        checks.rule(
            "customer_segment_is_valid",
            "customer_segment is VIP, Loyal, Regular or New, and the one its metrics give",
        ),
        checks.rule(
            "ltv_segment_is_valid",
            "ltv_segment is Platinum, Gold, Silver or Bronze (null without orders), per "
            "total_spent",
        ),
        checks.not_negative("total_spent", "avg_order_value"),
        checks.rule(
            "money_adds_up",
            "Net prices of all orders up to as_of_date add up to the sum of total_spent",
        ),
        checks.rule("dates_in_order", "first_order_date <= last_order_date <= as_of_date"),
        LAYERS_AGREE["marts.customers_enriched"],
    ]
}


def _counts(conn: duckdb.DuckDBPyConnection, sql: str) -> dict[str, int]:
    return {label if label is not None else "none": n for label, n in conn.execute(sql).fetchall()}


def _segment_charts(conn: duckdb.DuckDBPyConnection, table: str) -> Mapping[str, Any]:
    """Customers per segment and per LTV tier, as charts for the asset page."""
    segments = _counts(conn, f"select customer_segment, count(*) from {table} group by 1")
    tiers = _counts(conn, f"select ltv_segment, count(*) from {table} group by 1")
    return {
        "segment_mix": segment_mix_chart("Customers per segment", segments, CUSTOMER_SEGMENTS),
        "ltv_mix": segment_mix_chart("Customers per LTV tier", tiers, (*LTV_SEGMENTS, "none")),
    }


@dg.multi_asset(
    name="customers_enriched",
    outs={CUSTOMERS_ENRICHED.name: CUSTOMERS_ENRICHED.out},
    deps=CUSTOMERS_ENRICHED.deps,
    check_specs=[c.spec(key) for key, cs in CUSTOMERS_ENRICHED_CHECKS.items() for c in cs],
    can_subset=True,
)
def customers_enriched(
    context: dg.AssetExecutionContext, warehouse: Warehouse, calendar: BusinessCalendar
) -> Iterator[Any]:
    """Build marts.customers_enriched as of the run's as-of date (docs/tables.md,
    "marts.customers_enriched")."""
    if CUSTOMERS_ENRICHED.key in context.selected_asset_keys:
        as_of = calendar.as_of()
        context.log.info(f"customers_enriched as of {as_of}")
        yield dg.Output(
            Model(
                render("marts/customers_enriched", as_of_date=date_literal(as_of)),
                describe=_segment_charts,
            ),
            output_name=CUSTOMERS_ENRICHED.name,
        )
    yield from warehouse.audit_step(context, CUSTOMERS_ENRICHED_CHECKS)
