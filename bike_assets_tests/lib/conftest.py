"""Fixtures of the lib tests."""

from collections.abc import Iterator

import duckdb
import pytest


@pytest.fixture
def conn() -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB with the run's working schema (work), as export.read expects."""
    connection = duckdb.connect()
    connection.execute("create schema work")
    yield connection
    connection.close()
