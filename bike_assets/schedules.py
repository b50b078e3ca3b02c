"""The daily schedule: refresh everything at 06:00 as of the tick's date."""

from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg

from bike_assets.jobs import daily_refresh_job

AS_OF_TAG = "bike/as_of_date"


def as_of_run_config(as_of: str) -> dict[str, Any]:
    """The daily_refresh run config that sets the run's as-of date (YYYY-MM-DD)."""
    return {"ops": {"customers_enriched": {"config": {"as_of_date": as_of}}}}


def build_daily_schedule(timezone: str) -> dg.ScheduleDefinition:
    """Runs daily_refresh at 06:00 in `timezone`; the tick's date there is the run's as-of date.

    Running by default: the tick fires as soon as the daemon runs, with no switch in the UI.
    """
    zone = ZoneInfo(timezone)

    @dg.schedule(
        job=daily_refresh_job,
        cron_schedule="0 6 * * *",
        execution_timezone=timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Daily refresh at 06:00 ({timezone}); each run is as of its tick's date.",
    )
    def daily_refresh_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        as_of = context.scheduled_execution_time.astimezone(zone).date().isoformat()
        return dg.RunRequest(
            run_key=as_of, run_config=as_of_run_config(as_of), tags={AS_OF_TAG: as_of}
        )

    return daily_refresh_schedule
