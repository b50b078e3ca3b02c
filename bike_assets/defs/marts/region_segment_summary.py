"""marts.region_segment_summary: customers, average LTV and orders by region and LTV tier."""

from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
import duckdb

from bike_assets.defs.marts.customers_enriched import CUSTOMERS_ENRICHED, LTV_SEGMENTS
from bike_assets.defs.resources import Warehouse
from bike_assets.defs.staging import CENSUS_REGIONS
from bike_assets.lib import checks
from bike_assets.lib.specs import Table
from bike_assets.lib.sql import render
from bike_assets.lib.warehouse import Model
from bike_assets.tools.charts import region_tier_chart

REGION_SEGMENT_SUMMARY = Table(
    "marts",
    "region_segment_summary",
    "Customer metrics by region and lifetime-value tier (customer_segment here is the tier: "
    "Platinum, Gold, Silver, Bronze), over the customers with at least one order: how many "
    "customers, their average LTV and average orders. Ordered by region, then avg_ltv "
    "(highest first).",
    [
        ("region", "VARCHAR", "US Census region, or Unknown."),
        ("customer_segment", "VARCHAR", "LTV tier: Platinum, Gold, Silver or Bronze."),
        ("num_customers", "BIGINT", "Distinct customers in the region and tier."),
        ("avg_ltv", "DECIMAL(18,2)", "Average total_spent, half-up to cents."),
        ("avg_orders", "DECIMAL(18,2)", "Average total_orders, half-up to 2 decimals."),
    ],
    ["region", "customer_segment", "num_customers", "avg_ltv", "avg_orders"],
    deps=[CUSTOMERS_ENRICHED.key],
)

REGION_SEGMENT_SUMMARY_CHECKS = {
    REGION_SEGMENT_SUMMARY.key: [
        checks.columns_match_contract(REGION_SEGMENT_SUMMARY),
        checks.accepted_values("customer_segment", LTV_SEGMENTS),
        checks.unique_not_null("region", "customer_segment"),
        checks.rule(
            "customers_add_up", "num_customers adds up to the customers with at least one order"
        ),
        checks.not_negative("avg_ltv"),
    ]
}


def _region_tier_chart(conn: duckdb.DuckDBPyConnection, table: str) -> Mapping[str, Any]:
    """Customers per region and LTV tier, as a chart for the asset page."""
    cells = conn.execute(f"select region, customer_segment, num_customers from {table}").fetchall()
    return {
        "region_tier_grid": region_tier_chart(
            "Customers per region and LTV tier", cells, CENSUS_REGIONS, LTV_SEGMENTS
        )
    }


@dg.multi_asset(
    name="region_segment_summary",
    outs={REGION_SEGMENT_SUMMARY.name: REGION_SEGMENT_SUMMARY.out},
    deps=REGION_SEGMENT_SUMMARY.deps,
    check_specs=[c.spec(key) for key, cs in REGION_SEGMENT_SUMMARY_CHECKS.items() for c in cs],
    can_subset=True,
)
def region_segment_summary(
    context: dg.AssetExecutionContext, warehouse: Warehouse
) -> Iterator[Any]:
    """Build marts.region_segment_summary (docs/tables.md, "marts.region_segment_summary")."""
    if REGION_SEGMENT_SUMMARY.key in context.selected_asset_keys:
        yield dg.Output(
            Model(render("marts/region_segment_summary"), describe=_region_tier_chart),
            output_name=REGION_SEGMENT_SUMMARY.name,
        )
    yield from warehouse.audit_step(context, REGION_SEGMENT_SUMMARY_CHECKS)
