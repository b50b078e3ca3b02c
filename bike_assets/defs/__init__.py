"""The Dagster definitions of the code location, loaded by definitions.py
(dg.load_from_defs_folder): resources, assets by layer with their checks, jobs, schedules."""
