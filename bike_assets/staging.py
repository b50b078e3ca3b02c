"""Staging layer: the export read, validated, quarantined and cleaned, with PII hashed."""

from pathlib import Path

import dagster as dg
import duckdb

from bike_assets import checks, raw, rules
from bike_assets.publish import Column, Scratch, Table, warehouse_asset
from bike_assets.quarantine import check_rejected_share, quarantine, staged_name

RAW_FILES = [
    dg.AssetSpec(
        dg.AssetKey(["raw", spec.table.removeprefix("raw_")]),
        description=f"The shops' BikeStores export file {spec.name} (BIKE_RAW_DIR); read as is.",
        group_name="raw",
        kinds={"csv"},
        owners=["team:local-bike-data"],
    )
    for spec in raw.EXPORT
]

STG_CUSTOMERS = Table(
    "staging",
    "stg_customers",
    "One row per customer: demographics and location, names trimmed, email and phone hashed "
    "(HMAC-SHA256 with BIKE_PII_KEY), census region and gender added.",
    (
        Column("customer_id", "BIGINT", "Customer key (customers.csv)."),
        Column("first_name", "VARCHAR", "First name, trimmed."),
        Column("last_name", "VARCHAR", "Last name, trimmed."),
        Column("email_hash", "VARCHAR", "HMAC-SHA256 (hex) of the email, trimmed and lower-cased."),
        Column("phone_hash", "VARCHAR", "HMAC-SHA256 (hex) of the phone's digits; null if none."),
        Column("city", "VARCHAR", "City, trimmed."),
        Column("state", "VARCHAR", "State code, two letters, upper case."),
        Column("zip_code", "VARCHAR", "Zip code as text (leading zeros kept)."),
        Column("region", "VARCHAR", "US Census region of the state, or Unknown."),
        Column("gender", "VARCHAR", "female, male or unknown, from the shipped first-name list."),
    ),
    (
        checks.primary_key("customer_id"),
        checks.allowed_values("region", rules.CENSUS_REGIONS),
        checks.allowed_values("gender", rules.GENDERS),
        checks.regions_are_known(),
    ),
)

STG_STORES = Table(
    "staging",
    "stg_stores",
    "One row per store, with its name and address (contact details left out).",
    (
        Column("store_id", "BIGINT", "Store key (stores.csv)."),
        Column("store_name", "VARCHAR", "Store name, trimmed."),
        Column("street", "VARCHAR", "Street, trimmed."),
        Column("city", "VARCHAR", "City, trimmed."),
        Column("state", "VARCHAR", "State code, upper case."),
        Column("zip_code", "VARCHAR", "Zip code as text."),
    ),
    (checks.primary_key("store_id"),),
)

STG_ORDERS = Table(
    "staging",
    "stg_orders",
    "One row per order header, as exported; orders of unknown customers or stores quarantined.",
    (
        Column("order_id", "BIGINT", "Order key (orders.csv)."),
        Column("customer_id", "BIGINT", "The customer who placed the order."),
        Column("order_status", "INTEGER", "1 Pending, 2 Processing, 3 Rejected, 4 Completed."),
        Column("order_date", "DATE", "Day the order was placed."),
        Column("required_date", "DATE", "Day the customer needs it by."),
        Column("shipped_date", "DATE", "Day it shipped; null when not shipped."),
        Column("store_id", "BIGINT", "The store that took the order."),
        Column("staff_id", "BIGINT", "The staff member who took the order."),
    ),
    (
        checks.primary_key("order_id"),
        checks.references("customer_id", "stg_customers"),
        checks.references("store_id", "stg_stores"),
    ),
)

STG_ORDER_ITEMS = Table(
    "staging",
    "stg_order_items",
    "One row per order line; a line repeated identically kept once, faulty lines quarantined.",
    (
        Column("order_id", "BIGINT", "The order the line belongs to."),
        Column("item_id", "BIGINT", "Line number within the order."),
        Column("product_id", "BIGINT", "The product sold."),
        Column("quantity", "INTEGER", "Units sold (whole number)."),
        Column("list_price", "DECIMAL(18,2)", "Unit list price, two decimals."),
        Column("discount", "DECIMAL(18,6)", "Discount rate, 0 <= discount < 1."),
    ),
    (
        checks.primary_key("order_id", "item_id"),
        checks.references("order_id", "stg_orders"),
        checks.not_negative("list_price", "quantity", "discount"),
    ),
)

REJECTED_ROWS = Table(
    "staging",
    "rejected_rows",
    "Rows of the export quarantined instead of loaded: file, line, key and the reason.",
    (
        Column("file", "VARCHAR", "Export file the row came from."),
        Column("line", "BIGINT", "Line number in that file (the header is line 1)."),
        Column("key", "VARCHAR", "The row's key, e.g. order_id=17."),
        Column("column_name", "VARCHAR", "The column(s) at fault."),
        Column("reason", "VARCHAR", "Why the row was quarantined."),
    ),
    (checks.no_rejected_rows(),),
)

STAGING_TABLES = (STG_CUSTOMERS, STG_STORES, STG_ORDERS, STG_ORDER_ITEMS, REJECTED_ROWS)

_STG_CUSTOMERS = f"""
    select c.customer_id, trim(c.first_name) as first_name, trim(c.last_name) as last_name,
           {rules.keyed_hash(rules.normalized_email("c.email"))} as email_hash,
           {rules.keyed_hash(rules.normalized_phone("c.phone"))} as phone_hash,
           trim(c.city) as city, upper(trim(c.state)) as state,
           trim(c.zip_code) as zip_code,
           {rules.census_region("r")} as region, {rules.gender("g")} as gender
    from {raw.CUSTOMERS.table} c
    left join us_census_regions r on r.state = upper(trim(c.state))
    left join first_name_genders g on g.first_name = lower(trim(c.first_name))
    order by c.customer_id
"""
_STG_STORES = f"""
    select store_id, trim(store_name) as store_name, trim(street) as street,
           trim(city) as city, upper(trim(state)) as state, trim(zip_code) as zip_code
    from {raw.STORES.table} order by store_id
"""
_REJECTED_ROWS = "select file, line, key, column_name, reason from rejected order by file, line"


def _build(
    context: dg.AssetExecutionContext, conn: duckdb.DuckDBPyConnection
) -> dict[str, str | Scratch]:
    export = context.resources.raw_export
    raw_dir = Path(export.raw_dir)
    rows_read = {spec.name: raw.read(conn, raw_dir, spec) for spec in raw.EXPORT}
    context.log.info(f"Read {raw_dir}: {rows_read}")
    # The quarantine runs the staged tables' key checks on the scratch tables; those passed
    # on orders and order lines are reported as is (see Scratch).
    scratch = {staged_name(spec): spec.table for spec in raw.EXPORT}
    passed: dict[str, list[dg.AssetCheckResult]] = {spec.name: [] for spec in raw.EXPORT}

    def audit(spec: raw.RawFile, check: checks.Check) -> bool:
        key = dg.AssetKey(["staging", staged_name(spec)])
        result = check.run(conn, key, {**scratch, "this": spec.table})
        if result.passed:
            passed[spec.name].append(result)
        return result.passed

    quarantine(conn, raw_dir, rows_read, audit)
    check_rejected_share(conn, rows_read, export.max_rejected_share)
    rules.load_reference_tables(conn)
    rules.set_pii_key(conn, context.resources.pii_key.key_bytes(context.log))
    return {
        "stg_customers": _STG_CUSTOMERS,
        "stg_stores": _STG_STORES,
        # Orders and their lines are staged as read and cleaned: renamed, not copied.
        "stg_orders": Scratch(raw.ORDERS.table, tuple(passed[raw.ORDERS.name])),
        "stg_order_items": Scratch(raw.ORDER_ITEMS.table, tuple(passed[raw.ORDER_ITEMS.name])),
        "rejected_rows": _REJECTED_ROWS,
    }


staging_assets = warehouse_asset(
    name="staging",
    description="Reads the BikeStores export, fails on structural faults, quarantines faulty "
    "rows and stages the clean rows.",
    group_name="staging",
    tables=STAGING_TABLES,
    reads=RAW_FILES,
    build=_build,
)
