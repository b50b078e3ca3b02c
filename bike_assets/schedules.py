"""The daily schedule: refresh everything at 06:00 as of the tick's date."""

import dagster as dg

from bike_assets.jobs import daily_refresh_job


def build_daily_schedule(timezone: str) -> dg.ScheduleDefinition:
    """Runs daily_refresh at 06:00 in `timezone`; the tick's date is the run's as-of date."""

    @dg.schedule(
        job=daily_refresh_job,
        cron_schedule="0 6 * * *",
        execution_timezone=timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Daily refresh at 06:00; each run is as of its tick's date.",
    )
    def daily_refresh_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        as_of = context.scheduled_execution_time.date().isoformat()
        return dg.RunRequest(
            run_key=as_of,
            run_config={"ops": {"customers_enriched": {"config": {"as_of_date": as_of}}}},
            tags={"bike/as_of_date": as_of},
        )

    return daily_refresh_schedule
