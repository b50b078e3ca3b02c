"""Tests of bike_assets/sql: the rule macros and the models, on tiny hand-made tables."""
