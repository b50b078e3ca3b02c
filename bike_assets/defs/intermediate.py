"""The intermediate layer: orders_enriched, one row per order with its lines' totals."""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from bike_assets.defs.resources import Warehouse
from bike_assets.defs.staging import STG_CUSTOMERS, STG_ORDER_ITEMS, STG_ORDERS, STG_STORES
from bike_assets.lib import checks
from bike_assets.lib.checks import LAYERS_AGREE, WARN
from bike_assets.lib.specs import Table
from bike_assets.lib.sql import render
from bike_assets.lib.warehouse import Model

DELIVERY_STATUSES = ("On Time", "Late", "Pending", "Unknown")

ORDERS_ENRICHED = Table(
    "intermediate",
    "orders_enriched",
    "Aggregated orders: one row per order with its store, status, delivery and the totals of "
    "its lines (total_order_net_price, total_items, unique_products). Lines with quantity <= 0 "
    "are ignored. Every order status counts toward the customer metrics; the status is kept so "
    "that analysts can filter.",
    [
        ("order_id", "BIGINT", "Order key."),
        ("customer_id", "BIGINT", "The customer who placed the order."),
        ("store_id", "BIGINT", "The store that took the order."),
        ("store_name", "VARCHAR", "Name of that store."),
        ("staff_id", "BIGINT", "The staff member who took the order."),
        ("order_status", "INTEGER", "1 to 4, as exported."),
        ("order_status_label", "VARCHAR", "Pending, Processing, Rejected or Completed."),
        ("order_date", "DATE", "Day the order was placed."),
        ("required_date", "DATE", "Day the customer needs it by."),
        ("shipped_date", "DATE", "Day it shipped; null when not shipped."),
        (
            "delivery_status",
            "VARCHAR",
            "On Time, Late, Pending (not shipped) or Unknown (no required date, or shipped "
            "before it was placed).",
        ),
        (
            "days_to_ship",
            "BIGINT",
            "shipped_date - order_date in days; null if not shipped or negative.",
        ),
        ("total_items", "BIGINT", "Units over the order's lines with quantity > 0."),
        ("unique_products", "BIGINT", "Distinct products over those lines."),
        (
            "total_order_net_price",
            "DECIMAL(18,2)",
            "Sum of list_price * quantity * (1 - discount), exact, rounded half-up to cents "
            "once per order; 0.00 without lines.",
        ),
    ],
    [
        "order_id",
        "customer_id",
        "order_date",
        "delivery_status",
        "total_items",
        "total_order_net_price",
    ],
    deps=[t.key for t in (STG_ORDERS, STG_ORDER_ITEMS, STG_STORES, STG_CUSTOMERS)],
)

ORDERS_ENRICHED_CHECKS = {
    ORDERS_ENRICHED.key: [
        checks.columns_match_contract(ORDERS_ENRICHED),
        checks.unique_not_null("order_id"),
        checks.relationships("customer_id", "stg_customers"),
        checks.relationships("store_id", "stg_stores"),
        checks.accepted_values("delivery_status", DELIVERY_STATUSES),
        checks.not_negative("total_order_net_price", "total_items"),
        LAYERS_AGREE["intermediate.orders_enriched"],
        checks.rule("orders_have_lines", "Every order has at least one counted line", WARN),
        checks.rule(
            "delivery_dates_known",
            "Shipped orders have a required date and shipped on or after they were placed",
            WARN,
        ),
    ]
}


@dg.multi_asset(
    name="orders_enriched",
    outs={ORDERS_ENRICHED.name: ORDERS_ENRICHED.out},
    deps=ORDERS_ENRICHED.deps,
    check_specs=[c.spec(key) for key, cs in ORDERS_ENRICHED_CHECKS.items() for c in cs],
    can_subset=True,
)
def orders_enriched(context: dg.AssetExecutionContext, warehouse: Warehouse) -> Iterator[Any]:
    """Build intermediate.orders_enriched (docs/tables.md, "intermediate.orders_enriched")."""
    if ORDERS_ENRICHED.key in context.selected_asset_keys:
        yield dg.Output(
            Model(render("intermediate/orders_enriched")),
            output_name=ORDERS_ENRICHED.name,
        )
    yield from warehouse.audit_step(context, ORDERS_ENRICHED_CHECKS)
