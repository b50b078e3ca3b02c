"""Tests of bike_assets.tools: the sample-data generator, the benchmark and the charts."""
