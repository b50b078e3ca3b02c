"""Marts layer: customers_enriched (360° customer profile) and region_segment_summary."""

import dagster as dg
import duckdb

from bike_assets import checks, rules
from bike_assets.charts import customers_enriched_charts, region_segment_summary_charts
from bike_assets.intermediate import ORDERS_ENRICHED
from bike_assets.publish import Column, Table, warehouse_asset
from bike_assets.staging import STG_CUSTOMERS

CUSTOMERS_ENRICHED = Table(
    "marts",
    "customers_enriched",
    "Enriches customer data by aggregating their order activity and introducing behavioral "
    "metrics and segmentation labels: a 360° customer profile as of as_of_date. Every customer "
    "is kept; a customer without orders has null metrics, no store and segment New. Use it to "
    "find high-value customers (VIP, Loyal) for retention, to segment marketing, to follow "
    "recency (days_since_last_order) and to link behavior to gender and location.",
    (
        Column("customer_id", "BIGINT", "Customer key."),
        Column("gender", "VARCHAR", "female, male or unknown."),
        Column("email_hash", "VARCHAR", "Keyed hash of the email (no email in clear)."),
        Column("city", "VARCHAR", "City."),
        Column("state", "VARCHAR", "State code."),
        Column("region", "VARCHAR", "US Census region, or Unknown."),
        Column(
            "store_id", "BIGINT", "Primary store: most orders, then latest order, then lowest id."
        ),
        Column("store_name", "VARCHAR", "Name of the primary store."),
        Column("total_orders", "BIGINT", "Distinct orders placed up to as_of_date."),
        Column("total_spent", "DECIMAL(18,2)", "Sum of the orders' total_order_net_price."),
        Column("avg_order_value", "DECIMAL(18,2)", "total_spent / total_orders, half-up to cents."),
        Column("first_order_date", "DATE", "Date of the first order."),
        Column("last_order_date", "DATE", "Date of the most recent order."),
        Column("total_items_purchased", "BIGINT", "Sum of the orders' total_items."),
        Column("days_since_last_order", "BIGINT", "as_of_date - last_order_date in days."),
        Column("customer_segment", "VARCHAR", "VIP, Loyal, Regular or New (see the spec)."),
        Column("ltv_segment", "VARCHAR", "Platinum, Gold, Silver or Bronze; null without orders."),
        Column("as_of_date", "DATE", "The logical date of the run: orders after it are left out."),
    ),
    (
        checks.primary_key("customer_id"),
        checks.customer_segment_is_valid(),
        checks.ltv_segment_is_valid(),
        checks.not_negative("total_spent", "avg_order_value"),
        checks.money_adds_up(),
        checks.dates_in_order(),
    ),
    metadata=customers_enriched_charts,
)

REGION_SEGMENT_SUMMARY = Table(
    "marts",
    "region_segment_summary",
    "Customer metrics by region and lifetime-value tier (customer_segment here is the tier: "
    "Platinum, Gold, Silver, Bronze), over the customers with at least one order: how many "
    "customers, their average LTV and average orders. Ordered by region, then avg_ltv "
    "(highest first).",
    (
        Column("region", "VARCHAR", "US Census region, or Unknown."),
        Column("customer_segment", "VARCHAR", "LTV tier: Platinum, Gold, Silver or Bronze."),
        Column("num_customers", "BIGINT", "Distinct customers in the region and tier."),
        Column("avg_ltv", "DECIMAL(18,2)", "Average total_spent, half-up to cents."),
        Column("avg_orders", "DECIMAL(18,2)", "Average total_orders, half-up to 2 decimals."),
    ),
    (
        checks.allowed_values("customer_segment", rules.LTV_SEGMENTS),
        checks.primary_key("region", "customer_segment"),
        checks.summary_customers_add_up(),
        checks.not_negative("avg_ltv"),
    ),
    metadata=region_segment_summary_charts,
)

AS_OF_CONFIG = {
    "as_of_date": dg.Field(
        str,
        is_required=False,
        description="YYYY-MM-DD. Default: BIKE_AS_OF_DATE, else today in BIKE_SCHEDULE_TIMEZONE.",
    )
}


def _customers_enriched(
    context: dg.AssetExecutionContext, conn: duckdb.DuckDBPyConnection
) -> dict[str, str]:
    as_of = context.resources.calendar.as_of(
        context.op_execution_context.op_config.get("as_of_date")
    )
    context.log.info(f"customers_enriched as of {as_of}")
    as_of_sql = f"date '{as_of.isoformat()}'"
    return {
        "customers_enriched": f"""
        with orders as (
            select * from {{orders_enriched}} where order_date <= {as_of_sql}
        ),
        metrics as (
            select customer_id, count(*) as total_orders,
                   sum(total_order_net_price) as total_spent,
                   min(order_date) as first_order_date, max(order_date) as last_order_date,
                   cast(sum(total_items) as bigint) as total_items_purchased
            from orders group by customer_id
        ),
        primary_store as (
            select customer_id, store_id, store_name from (
                select customer_id, store_id, any_value(store_name) as store_name,
                       count(*) as orders_at_store, max(order_date) as latest_at_store
                from orders group by customer_id, store_id
            )
            qualify {rules.primary_store_rank("orders_at_store", "latest_at_store", "store_id")} = 1
        )
        select c.customer_id, c.gender, c.email_hash, c.city, c.state, c.region,
               s.store_id, s.store_name, m.total_orders,
               cast(m.total_spent as decimal(18, 2)) as total_spent,
               {rules.divide_half_up("m.total_spent", "m.total_orders")} as avg_order_value,
               m.first_order_date, m.last_order_date, m.total_items_purchased,
               {rules.days_between("m.last_order_date", as_of_sql)} as days_since_last_order,
               {rules.customer_segment("m.total_orders", "m.total_spent")} as customer_segment,
               {rules.ltv_segment("m.total_spent")} as ltv_segment,
               {as_of_sql} as as_of_date
        from {{stg_customers}} c
        left join metrics m using (customer_id)
        left join primary_store s using (customer_id)
        order by c.customer_id
        """
    }


def _region_segment_summary(
    context: dg.AssetExecutionContext, conn: duckdb.DuckDBPyConnection
) -> dict[str, str]:
    return {
        "region_segment_summary": f"""
        select region, ltv_segment as customer_segment,
               count(distinct customer_id) as num_customers,
               {rules.divide_half_up("sum(total_spent)", "count(distinct customer_id)")} as avg_ltv,
               {rules.divide_half_up("sum(total_orders)", "count(distinct customer_id)")}
                   as avg_orders
        from {{customers_enriched}}
        where total_orders > 0
        group by region, ltv_segment
        order by region, avg_ltv desc, customer_segment
        """
    }


customers_enriched = warehouse_asset(
    name="customers_enriched",
    description=CUSTOMERS_ENRICHED.description,
    group_name="marts",
    tables=[CUSTOMERS_ENRICHED],
    reads=[STG_CUSTOMERS, ORDERS_ENRICHED],
    build=_customers_enriched,
    config_schema=AS_OF_CONFIG,
)

region_segment_summary = warehouse_asset(
    name="region_segment_summary",
    description=REGION_SEGMENT_SUMMARY.description,
    group_name="marts",
    tables=[REGION_SEGMENT_SUMMARY],
    reads=[CUSTOMERS_ENRICHED],
    build=_region_segment_summary,
)
