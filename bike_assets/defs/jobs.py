"""Jobs: the daily refresh (every table and its checks) and the audit (checks only).

A run's terminal shows INFO and above; BIKE_LOG_LEVEL=DEBUG (read when the code location
loads) shows Dagster's DEBUG events too.
"""

import os

import dagster as dg

from bike_assets.lib.warehouse import READS_PUBLISHED

LOG_LEVEL = os.environ.get("BIKE_LOG_LEVEL") or "INFO"

daily_refresh = dg.define_asset_job(
    name="daily_refresh",
    selection=dg.AssetSelection.all(),
    description="Builds every table in a new version of the warehouse, runs every check on it, "
    "and publishes the version whole only when every ERROR check passed.",
    config={"loggers": {"console": {"config": {"log_level": LOG_LEVEL}}}},
)

audit_job = dg.define_asset_job(
    name="audit_job",
    selection=dg.AssetSelection.all_asset_checks(),
    description="Runs every asset check against the published tables (BIKE_DUCKDB_PATH, "
    "read-only); materializes nothing.",
    tags=READS_PUBLISHED,
    config={"loggers": {"console": {"config": {"log_level": LOG_LEVEL}}}},
)
