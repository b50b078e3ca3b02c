"""The staging layer: the export read, validated, quarantined and cleaned, PII hashed.

One op reads the four files once and builds the five staging tables; each table's SQL is
`sql/staging/<table>.sql`.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from bike_assets.defs.raw import raw_files
from bike_assets.defs.resources import PiiKey, RawExport, Warehouse
from bike_assets.lib import checks
from bike_assets.lib.checks import WARN
from bike_assets.lib.specs import Table
from bike_assets.lib.sql import render
from bike_assets.lib.warehouse import Model

CENSUS_REGIONS = ("Northeast", "Midwest", "South", "West", "Unknown")
GENDERS = ("female", "male", "unknown")


def _spec(
    name: str, description: str, columns: list[tuple[str, str, str]], preview: list[str]
) -> Table:
    return Table("staging", name, description, columns, preview)


STG_CUSTOMERS = _spec(
    "stg_customers",
    "One row per customer: demographics and location, names trimmed, email and phone hashed "
    "(HMAC-SHA256 with BIKE_PII_KEY), census region and gender added.",
    [
        ("customer_id", "BIGINT", "Customer key (customers.csv)."),
        ("first_name", "VARCHAR", "First name, trimmed."),
        ("last_name", "VARCHAR", "Last name, trimmed."),
        ("email_hash", "VARCHAR", "HMAC-SHA256 (hex) of the email, trimmed and lower-cased."),
        ("phone_hash", "VARCHAR", "HMAC-SHA256 (hex) of the phone's digits; null if none."),
        ("city", "VARCHAR", "City, trimmed."),
        ("state", "VARCHAR", "State code, two letters, upper case."),
        ("zip_code", "VARCHAR", "Zip code as text (leading zeros kept)."),
        ("region", "VARCHAR", "US Census region of the state, or Unknown."),
        ("gender", "VARCHAR", "female, male or unknown, from the shipped first-name list."),
    ],
    ["customer_id", "first_name", "last_name", "city", "state", "region", "gender"],
)
STG_STORES = _spec(
    "stg_stores",
    "One row per store, with its name and address (contact details left out).",
    [
        ("store_id", "BIGINT", "Store key (stores.csv)."),
        ("store_name", "VARCHAR", "Store name, trimmed."),
        ("street", "VARCHAR", "Street, trimmed."),
        ("city", "VARCHAR", "City, trimmed."),
        ("state", "VARCHAR", "State code, upper case."),
        ("zip_code", "VARCHAR", "Zip code as text."),
    ],
    ["store_id", "store_name", "city", "state"],
)
STG_ORDERS = _spec(
    "stg_orders",
    "One row per order header, as exported; orders of unknown customers or stores quarantined.",
    [
        ("order_id", "BIGINT", "Order key (orders.csv)."),
        ("customer_id", "BIGINT", "The customer who placed the order."),
        ("order_status", "INTEGER", "1 Pending, 2 Processing, 3 Rejected, 4 Completed."),
        ("order_date", "DATE", "Day the order was placed."),
        ("required_date", "DATE", "Day the customer needs it by."),
        ("shipped_date", "DATE", "Day it shipped; null when not shipped."),
        ("store_id", "BIGINT", "The store that took the order."),
        ("staff_id", "BIGINT", "The staff member who took the order."),
    ],
    ["order_id", "customer_id", "order_status", "order_date", "shipped_date", "store_id"],
)
STG_ORDER_ITEMS = _spec(
    "stg_order_items",
    "One row per order line; a line repeated identically kept once, faulty lines quarantined; "
    "lines with quantity <= 0 (returns) kept, and ignored by orders_enriched.",
    [
        ("order_id", "BIGINT", "The order the line belongs to."),
        ("item_id", "BIGINT", "Line number within the order."),
        ("product_id", "BIGINT", "The product sold."),
        ("quantity", "INTEGER", "Units sold (whole number; <= 0 for returns)."),
        ("list_price", "DECIMAL(18,2)", "Unit list price, two decimals."),
        ("discount", "DECIMAL(18,6)", "Discount rate, 0 <= discount <= 1 (1: a free item)."),
    ],
    ["order_id", "item_id", "product_id", "quantity", "list_price", "discount"],
)
REJECTED_ROWS = _spec(
    "rejected_rows",
    "Rows of the export quarantined instead of loaded: file, line, key and the reason.",
    [
        ("file", "VARCHAR", "Export file the row came from."),
        ("line", "BIGINT", "Line number in that file (the header is line 1)."),
        ("key", "VARCHAR", "The row's key, e.g. order_id=17."),
        ("column_name", "VARCHAR", "The column(s) at fault."),
        ("reason", "VARCHAR", "Why the row was quarantined."),
    ],
    ["file", "line", "key", "column_name", "reason"],
)

STAGING_TABLES = (STG_CUSTOMERS, STG_STORES, STG_ORDERS, STG_ORDER_ITEMS, REJECTED_ROWS)
STAGING_CHECKS: dict[dg.AssetKey, list[checks.Check]] = {
    STG_CUSTOMERS.key: [
        checks.unique_not_null("customer_id"),
        checks.accepted_values("region", CENSUS_REGIONS),
        checks.accepted_values("gender", GENDERS),
        checks.rule("regions_are_known", "Every customer's state is a US state code", WARN),
    ],
    STG_STORES.key: [checks.unique_not_null("store_id")],
    STG_ORDERS.key: [
        checks.unique_not_null("order_id"),
        checks.relationships("customer_id", "stg_customers"),
        checks.relationships("store_id", "stg_stores"),
    ],
    STG_ORDER_ITEMS.key: [
        checks.unique_not_null("order_id", "item_id"),
        checks.relationships("order_id", "stg_orders"),
        checks.not_negative("list_price", "discount"),
        checks.rule(
            "lines_not_counted",
            "Order lines with quantity <= 0 (returns), ignored by orders_enriched",
            WARN,
        ),
    ],
    REJECTED_ROWS.key: [
        checks.rule("no_rejected_rows", "The export had no row to quarantine", WARN)
    ],
}
for table in STAGING_TABLES:
    STAGING_CHECKS[table.key].insert(0, checks.columns_match_contract(table))


@dg.multi_asset(
    name="staging",
    outs={table.name: table.out for table in STAGING_TABLES},
    deps=raw_files,
    check_specs=[
        check.spec(key) for key, key_checks in STAGING_CHECKS.items() for check in key_checks
    ],
    can_subset=True,
    description="Reads the BikeStores export (BIKE_RAW_DIR), refuses structural faults, "
    "quarantines faulty rows and stages the clean ones.",
)
def staging(
    context: dg.AssetExecutionContext, warehouse: Warehouse, raw_export: RawExport, pii_key: PiiKey
) -> Iterator[Any]:
    """Build the staging tables (docs/tables.md, "Raw input" and "staging.stg_customers").

    Raises export.RawExportError naming the file, the line, the column and the value when the
    export breaks its contract, or when a file has more quarantined rows than
    BIKE_MAX_REJECTED_SHARE.
    """
    building = [table for table in STAGING_TABLES if table.key in context.selected_asset_keys]
    if building:
        # The export read, validated and quarantined into the run's working tables, with the
        # lookups and the PII key, by the warehouse's engine (lib/export.py, lib/quarantine.py).
        warehouse.stage_export(
            context, raw_export.folder, raw_export.max_share, pii_key.key_bytes(context.log)
        )
        for table in building:
            yield dg.Output(Model(render(f"staging/{table.name}")), output_name=table.name)
    yield from warehouse.audit_step(context, STAGING_CHECKS)
