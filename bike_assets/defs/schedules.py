"""The daily schedule: refresh everything at 06:00 as of the tick's date."""

import os

import dagster as dg

from bike_assets.defs.jobs import daily_refresh
from bike_assets.defs.resources import parse_timezone

AS_OF_TAG = "bike/as_of_date"


def as_of_run_config(as_of: str) -> dict:
    """The run config that sets a run's as-of date (YYYY-MM-DD)."""
    return {"resources": {"calendar": {"config": {"as_of_date": as_of}}}}


@dg.definitions
def schedules() -> dg.Definitions:
    """daily_refresh_schedule, at 06:00 in BIKE_SCHEDULE_TIMEZONE (default UTC), on from the
    start. Raises SettingError when the variable is not an IANA timezone name."""
    timezone = os.environ.get("BIKE_SCHEDULE_TIMEZONE") or "UTC"
    zone = parse_timezone("BIKE_SCHEDULE_TIMEZONE", timezone)

    @dg.schedule(
        job=daily_refresh,
        cron_schedule="0 6 * * *",
        execution_timezone=zone.key,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Daily refresh at 06:00 ({zone.key}, BIKE_SCHEDULE_TIMEZONE); each run is "
        "as of its tick's date in that timezone.",
    )
    def daily_refresh_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        as_of = context.scheduled_execution_time.astimezone(zone).date().isoformat()
        return dg.RunRequest(
            run_key=as_of, run_config=as_of_run_config(as_of), tags={AS_OF_TAG: as_of}
        )

    return dg.Definitions(schedules=[daily_refresh_schedule])
