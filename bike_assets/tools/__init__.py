"""Tooling around the pipeline, outside the code location: sample data, benchmark, charts."""
