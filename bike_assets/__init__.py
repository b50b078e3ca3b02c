"""bike_assets: the Local Bike analytics pipeline, a Dagster code location over DuckDB."""
