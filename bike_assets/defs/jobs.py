"""Jobs: the daily refresh (every table and its checks) and the audit (checks only)."""

import dagster as dg

daily_refresh = dg.define_asset_job(
    name="daily_refresh",
    selection=dg.AssetSelection.all(),
    description="Builds every table in a new version of the warehouse, runs every check on it, "
    "and publishes the version whole only when every ERROR check passed.",
)

audit_job = dg.define_asset_job(
    name="audit_job",
    selection=dg.AssetSelection.all_asset_checks(),
    description="Runs every asset check against the published tables (BIKE_DUCKDB_PATH, "
    "read-only); materializes nothing.",
)
