"""Intermediate layer: orders_enriched, one row per order with its lines' totals."""

import dagster as dg
import duckdb

from bike_assets import checks, rules
from bike_assets.publish import Column, Table, warehouse_asset
from bike_assets.staging import STG_CUSTOMERS, STG_ORDER_ITEMS, STG_ORDERS, STG_STORES

ORDERS_ENRICHED = Table(
    "intermediate",
    "orders_enriched",
    "Aggregated orders: one row per order with its store, status, delivery and the totals of "
    "its lines (total_order_net_price, total_items, unique_products). Every order status "
    "counts toward the customer metrics; the status is kept so that analysts can filter.",
    (
        Column("order_id", "BIGINT", "Order key."),
        Column("customer_id", "BIGINT", "The customer who placed the order."),
        Column("store_id", "BIGINT", "The store that took the order."),
        Column("store_name", "VARCHAR", "Name of that store."),
        Column("staff_id", "BIGINT", "The staff member who took the order."),
        Column("order_status", "INTEGER", "1 to 4, as exported."),
        Column("order_status_label", "VARCHAR", "Pending, Processing, Rejected or Completed."),
        Column("order_date", "DATE", "Day the order was placed."),
        Column("required_date", "DATE", "Day the customer needs it by."),
        Column("shipped_date", "DATE", "Day it shipped; null when not shipped."),
        Column("delivery_status", "VARCHAR", "On Time, Late (shipped after required) or Pending."),
        Column("days_to_ship", "BIGINT", "shipped_date - order_date in days; null if not shipped."),
        Column("total_items", "BIGINT", "Units over the order's lines with quantity > 0."),
        Column("unique_products", "BIGINT", "Distinct products over those lines."),
        Column(
            "total_order_net_price",
            "DECIMAL(18,2)",
            "Sum of list_price * quantity * (1 - discount), exact, rounded half-up to cents "
            "once per order; 0.00 without lines.",
        ),
    ),
    (
        checks.primary_key("order_id"),
        checks.references("customer_id", "stg_customers"),
        checks.references("store_id", "stg_stores"),
        checks.allowed_values("delivery_status", rules.DELIVERY_STATUSES),
        checks.not_negative("total_order_net_price", "total_items"),
        checks.orders_have_lines(),
    ),
)

_SELECT = f"""
    with lines as (
        select order_id,
               cast(sum(quantity) as bigint) as total_items,
               count(product_id) as products,
               -- product ids mod 64 as bits: as many bits as products, none repeats
               bit_count(bit_or(1::ubigint << (product_id & 63))) as product_bits,
               sum({rules.line_net_price("list_price", "quantity", "discount")}) as net_price
        from {{stg_order_items}}
        where quantity > 0
        group by order_id
    ),
    repeated_products as (  -- fewer bits than products (5% of orders): counted exactly
        select order_id, count(distinct product_id) as unique_products
        from {{stg_order_items}}
        where quantity > 0
          and order_id in (select order_id from lines where product_bits <> products)
        group by order_id
    )
    select o.order_id, o.customer_id, o.store_id, s.store_name, o.staff_id, o.order_status,
           {rules.order_status_label("o.order_status")} as order_status_label,
           o.order_date, o.required_date, o.shipped_date,
           {rules.delivery_status("o.shipped_date", "o.required_date")} as delivery_status,
           {rules.days_between("o.order_date", "o.shipped_date")} as days_to_ship,
           coalesce(l.total_items, 0) as total_items,
           coalesce(r.unique_products, l.products, 0) as unique_products,
           coalesce({rules.cents_half_up("l.net_price")}, 0) as total_order_net_price
    from {{stg_orders}} o
    left join {{stg_stores}} s using (store_id)
    left join lines l using (order_id)
    left join repeated_products r using (order_id)
"""


def _build(context: dg.AssetExecutionContext, conn: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return {"orders_enriched": _SELECT}


orders_enriched = warehouse_asset(
    name="orders_enriched",
    description=ORDERS_ENRICHED.description,
    group_name="intermediate",
    tables=[ORDERS_ENRICHED],
    reads=[STG_ORDERS, STG_ORDER_ITEMS, STG_STORES, STG_CUSTOMERS],
    build=_build,
)
