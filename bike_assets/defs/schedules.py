"""The daily schedule: refresh everything at 06:00 as of the tick's date."""

import os

import dagster as dg

from bike_assets.defs.jobs import daily_refresh
from bike_assets.defs.resources import parse_timezone

AS_OF_TAG = "bike/as_of_date"
TIMEZONE = os.environ.get("BIKE_SCHEDULE_TIMEZONE") or "UTC"


def as_of_run_config(as_of: str) -> dict:
    """The run config that sets a run's as-of date (YYYY-MM-DD)."""
    return {"resources": {"calendar": {"config": {"as_of_date": as_of}}}}


@dg.schedule(
    job=daily_refresh,
    cron_schedule="0 6 * * *",
    execution_timezone=parse_timezone("BIKE_SCHEDULE_TIMEZONE", TIMEZONE).key,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=f"Daily refresh at 06:00 ({TIMEZONE}, BIKE_SCHEDULE_TIMEZONE); each run is as "
    "of its tick's date.",
)
def daily_refresh_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """One run a day, as of the tick's date in the schedule's timezone (its run key)."""
    as_of = context.scheduled_execution_time.astimezone(
        parse_timezone("BIKE_SCHEDULE_TIMEZONE", TIMEZONE)
    ).date().isoformat()
    return dg.RunRequest(run_key=as_of, run_config=as_of_run_config(as_of), tags={AS_OF_TAG: as_of})
