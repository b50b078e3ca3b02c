"""The daily schedule: its tick's as-of date (in the schedule's timezone), run config and tags."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from bike_assets.defs.resources import SettingError
from bike_assets.defs.schedules import as_of_run_config
from bike_assets_tests.conftest import Pipeline, environment

SCHEDULE = "daily_refresh_schedule"


def schedule_from_env(tiny_pipeline: Pipeline, timezone: str | None) -> dg.Definitions:
    """The code location as `dagster dev` loads it, with BIKE_SCHEDULE_TIMEZONE set or not."""
    return tiny_pipeline.with_env(BIKE_SCHEDULE_TIMEZONE=timezone or "").definitions()


def tick(defs: dg.Definitions, at: datetime) -> dg.RunRequest:
    """The single run request of the schedule's tick at `at` (timezone-aware)."""
    schedule = defs.resolve_schedule_def(SCHEDULE)
    with dg.build_schedule_context(scheduled_execution_time=at) as context:
        (request,) = schedule.evaluate_tick(context).run_requests
    return request


def as_of_config(as_of: str) -> dict:
    """The run config of an as-of date, typed by hand."""
    return {"resources": {"calendar": {"config": {"as_of_date": as_of}}}}


def test_as_of_run_config() -> None:
    assert as_of_run_config("2026-03-08") == as_of_config("2026-03-08")


def test_schedule_runs_daily_refresh_at_six_and_is_on_by_default(tiny_pipeline: Pipeline) -> None:
    schedule = schedule_from_env(tiny_pipeline, None).resolve_schedule_def(SCHEDULE)
    assert schedule.cron_schedule == "0 6 * * *"
    assert schedule.execution_timezone == "UTC"
    assert schedule.job_name == "daily_refresh"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING


def test_utc_tick_is_as_of_its_date(tiny_pipeline: Pipeline) -> None:
    defs = schedule_from_env(tiny_pipeline, None)
    request = tick(defs, datetime(2026, 3, 8, 6, 0, tzinfo=UTC))
    assert request.run_config == as_of_config("2026-03-08")
    assert request.tags["bike/as_of_date"] == "2026-03-08"
    assert request.run_key == "2026-03-08"


@pytest.mark.parametrize(
    ("timezone", "utc_time", "as_of"),
    [
        # 06:00 in Los Angeles on 2026-03-08, the day DST starts (PDT, UTC-7) = 13:00 UTC.
        ("America/Los_Angeles", datetime(2026, 3, 8, 13, 0, tzinfo=UTC), "2026-03-08"),
        # 06:00 in Tokyo (UTC+9) on 2026-03-08 = 21:00 UTC on 2026-03-07: the date is Tokyo's.
        ("Asia/Tokyo", datetime(2026, 3, 7, 21, 0, tzinfo=UTC), "2026-03-08"),
    ],
)
def test_tick_is_as_of_its_date_in_the_schedule_timezone(
    tiny_pipeline: Pipeline, timezone: str, utc_time: datetime, as_of: str
) -> None:
    defs = schedule_from_env(tiny_pipeline, timezone)
    schedule = defs.resolve_schedule_def(SCHEDULE)
    assert schedule.execution_timezone == timezone
    assert utc_time.astimezone(ZoneInfo(timezone)).hour == 6  # the tick is 06:00 local
    # The same instant, whether the daemon hands it over in local time or in UTC.
    for at in (utc_time, utc_time.astimezone(ZoneInfo(timezone))):
        request = tick(defs, at)
        assert request.run_config == as_of_config(as_of)
        assert request.tags["bike/as_of_date"] == as_of


def test_a_timezone_that_is_not_iana_fails_to_load(tiny_pipeline: Pipeline) -> None:
    # Dagster wraps the error of the defs module that failed to build; the cause says why.
    with pytest.raises(Exception) as raised:
        schedule_from_env(tiny_pipeline, "Mars/Olympus")
    error: BaseException | None = raised.value
    while error is not None and not isinstance(error, SettingError):
        error = error.__cause__
    assert isinstance(error, SettingError), raised.value
    assert "BIKE_SCHEDULE_TIMEZONE='Mars/Olympus': expected an IANA timezone name" in str(error)


def test_tick_run_config_validates_against_the_job(tiny_pipeline: Pipeline) -> None:
    pipeline = tiny_pipeline.with_env(BIKE_SCHEDULE_TIMEZONE="Asia/Tokyo")
    defs = pipeline.definitions()
    request = tick(defs, datetime(2026, 3, 7, 21, 0, tzinfo=UTC))
    with environment(pipeline.environment):
        job = defs.resolve_job_def("daily_refresh")
        assert dg.validate_run_config(job, request.run_config) is not None
        with pytest.raises(dg.DagsterInvalidConfigError):
            dg.validate_run_config(
                job, {"resources": {"calendar": {"config": {"as_of": "2026-03-08"}}}}
            )


def test_running_the_tick_builds_the_marts_as_of_its_date(tiny_pipeline: Pipeline) -> None:
    pipeline = tiny_pipeline.with_env(BIKE_SCHEDULE_TIMEZONE="Asia/Tokyo")
    # 06:00 Tokyo on 2024-02-15 = 21:00 UTC on 2024-02-14.
    with environment(pipeline.environment):
        defs = pipeline.definitions()
        request = tick(defs, datetime(2024, 2, 14, 21, 0, tzinfo=UTC))
        result = defs.resolve_job_def("daily_refresh").execute_in_process(
            run_config=request.run_config, tags=request.tags
        )
    assert result.success
    assert result.dagster_run.tags["bike/as_of_date"] == "2024-02-15"

    customers = pipeline.table("marts.customers_enriched").set_index("customer_id")
    assert set(customers["as_of_date"].dt.date) == {date(2024, 2, 15)}
    # Customer 1: orders of 2024-01-01 (0.27) and 2024-02-01 (190.00), both by 2024-02-15.
    assert customers.loc[1, "total_orders"] == 2
    assert str(customers.loc[1, "total_spent"]) == "190.27"
    assert customers.loc[1, "days_since_last_order"] == 14  # 2024-02-15 - 2024-02-01
    # Customer 2's only order is dated 2024-03-01, after the as-of date: no orders yet.
    assert customers["total_orders"].isna().tolist() == [False, True, True]
    assert customers.loc[2, "customer_segment"] == "New"
