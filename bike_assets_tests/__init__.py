"""Tests of bike_assets, one module per concern, mirroring the package."""
