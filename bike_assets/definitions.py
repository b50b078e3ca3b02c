"""The bike_assets code location: assembles assets, checks, jobs, schedule and resources."""

import dagster as dg

from bike_assets.intermediate import orders_enriched
from bike_assets.jobs import audit_job, daily_refresh_job
from bike_assets.marts import customers_enriched, region_segment_summary
from bike_assets.resources import build_resources
from bike_assets.schedules import build_daily_schedule
from bike_assets.settings import Settings
from bike_assets.staging import RAW_FILES, staging_assets


def build_definitions(settings: Settings) -> dg.Definitions:
    """The code location for the given settings (tests pass their own)."""
    return dg.Definitions(
        assets=[
            *RAW_FILES,
            staging_assets,
            orders_enriched,
            customers_enriched,
            region_segment_summary,
        ],
        jobs=[daily_refresh_job, audit_job],
        schedules=[build_daily_schedule(settings.schedule_timezone)],
        resources=build_resources(settings),
        executor=dg.in_process_executor,
    )


defs = build_definitions(Settings.from_env())
