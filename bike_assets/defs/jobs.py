"""Jobs: the daily refresh (the export observed, every table and its checks) and the audit
(checks only).

Logs at INFO and above by default: `bike-assets run` (make run, make audit) prints a run's
messages at BIKE_LOG_LEVEL and above (DEBUG: every Dagster event too), and the process that
executes a run (`make ui`'s terminal) logs at that level, read when the code location loads.

In the UI, "Materialize all" on the daily_refresh job's page (Jobs > daily_refresh) runs this
job; the one on the global asset lineage runs the same assets as an ad hoc run (`__ASSET_JOB`).
"""

import os

import dagster as dg

from bike_assets.defs.raw import raw_files
from bike_assets.lib.warehouse import READS_PUBLISHED

LOG_LEVEL = os.environ.get("BIKE_LOG_LEVEL") or "INFO"

daily_refresh = dg.define_asset_job(
    name="daily_refresh",
    selection=dg.AssetSelection.all() | dg.AssetSelection.assets(*raw_files),
    description="Observes the export's files, builds every table in a new version of the "
    "warehouse, runs every check on it, and publishes the version whole only when every ERROR "
    "check passed. Runs daily at 06:00 (daily_refresh_schedule), from `make run`, or from "
    "this page.",
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
