"""Jobs: the daily refresh (every asset and its checks) and the audit (checks only)."""

import dagster as dg

daily_refresh_job = dg.define_asset_job(
    name="daily_refresh",
    selection=dg.AssetSelection.all(),
    description="Materializes every table with write-audit-publish: each table is published "
    "only when its ERROR checks pass.",
)

audit_job = dg.define_asset_job(
    name="audit_job",
    selection=dg.AssetSelection.all_asset_checks(),
    description="Runs every asset check against the published tables; materializes nothing.",
)
