"""Tests of bike_assets/lib."""
