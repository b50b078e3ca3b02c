"""Tests of bike_assets/defs: the assets, their checks, jobs and schedule, run end to end."""
