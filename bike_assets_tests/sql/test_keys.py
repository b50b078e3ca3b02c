"""sql/macros/keys.sql: each key check by buckets of ids returns exactly the rows of the plain
query its comment shows, on random keys (repeated, negative, huge, null, and not whole
numbers). On Spark: lib/test_spark.py."""

import random

import duckdb
import pytest

from bike_assets.lib.sql import expand
from bike_assets_tests.lib.test_checks import random_id

# The plain queries, as sql/macros/keys.sql shows them.
PLAIN_REPEATED = """
    select {key}, count(*) as rows from {relation} group by {key}
    having count(*) > 1 or {any_null}
"""
PLAIN_MISSING = """
    select child.{column}, count(*) as rows
    from {relation} as child
    anti join {parent} as parent on parent.{column} = child.{column}
    where child.{column} is not null
    group by child.{column}
"""
PLAIN_NOT_ONCE = """
    with here as (select {key}, count(*) as rows_here from {relation} group by {key}),
    there as (select {key}, count(*) as rows_there from {parent} group by {key})
    select coalesce(here.{key}, there.{key}) as {key},
           coalesce(here.rows_here, 0) as rows_here,
           coalesce(there.rows_there, 0) as rows_there
    from here full join there on there.{key} = here.{key}
    where here.rows_here is distinct from there.rows_there
"""


def random_keys(seed: int) -> tuple[list[tuple], list[tuple]]:
    """(lines: (order_id, item_id) with repeats; orders: (order_id,) with repeats)."""
    rng = random.Random(seed)
    lines = [(random_id(rng), random_id(rng)) for _ in range(300)]
    lines += rng.sample(lines, 60)
    orders = [(random_id(rng),) for _ in range(150)] + rng.sample(lines, 40)
    orders = [(order[0],) for order in orders] + [(rng.randint(-70, 70),) for _ in range(20)]
    return lines, orders


def tables(conn: duckdb.DuckDBPyConnection, seed: int, kind: str = "bigint") -> None:
    """Tables `lines` and `orders` of random keys, typed `kind` (double: halves, 1.5 and 2.0
    reading as the same whole number; integer: the ids modulo 2**31 - 1)."""
    lines, orders = random_keys(seed)
    value = {
        "double": "cast(unnest(?::bigint[]) as double) / 2",
        "integer": "cast(unnest(?::bigint[]) % 2147483647 as integer)",
    }.get(kind, f"cast(unnest(?::bigint[]) as {kind})")
    conn.execute(
        f"create or replace table lines as select {value} as order_id, {value} as item_id",
        [[order for order, _ in lines], [item for _, item in lines]],
    )
    conn.execute(
        f"create or replace table orders as select {value} as order_id",
        [[order for (order,) in orders]],
    )


def rows(conn: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return sorted(conn.execute(sql).fetchall(), key=repr)


@pytest.fixture
def conn():
    with duckdb.connect() as conn:
        yield conn


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("kind", ["bigint", "double", "varchar"])
def test_repeated_keys_by_buckets_equals_the_plain_query(conn, seed: int, kind: str) -> None:
    tables(conn, seed, kind)
    for relation, columns in (("lines", ["order_id", "item_id"]), ("orders", ["order_id"])):
        plain = PLAIN_REPEATED.format(
            key=", ".join(columns),
            relation=relation,
            any_null=" or ".join(f"{column} is null" for column in columns),
        )
        for id_column in columns:
            fast = expand(
                "repeated_keys(relation, columns, id)",
                relation=relation,
                columns=columns,
                id=id_column,
            )
            assert rows(conn, fast) == rows(conn, plain)
        assert rows(conn, plain)  # the random keys repeat


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("kind", ["bigint", "integer"])
def test_missing_references_by_buckets_equals_the_plain_query(conn, seed: int, kind: str) -> None:
    tables(conn, seed, kind)
    for relation, parent in (("lines", "orders"), ("orders", "lines")):
        plain = PLAIN_MISSING.format(relation=relation, parent=parent, column="order_id")
        fast = expand(
            "missing_references(relation, 'order_id', parent)", relation=relation, parent=parent
        )
        assert rows(conn, fast) == rows(conn, plain)
        assert rows(conn, plain)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("kind", ["bigint", "integer"])
def test_keys_not_once_in_both_by_buckets_equals_the_plain_query(
    conn, seed: int, kind: str
) -> None:
    tables(conn, seed, kind)
    # One table against a copy of itself (with its repeats), and against another table.
    conn.execute("create table orders_copy as from orders")
    for relation, parent in (("orders", "orders_copy"), ("lines", "orders"), ("orders", "lines")):
        plain = PLAIN_NOT_ONCE.format(relation=relation, parent=parent, key="order_id")
        fast = expand(
            "keys_not_once_in_both(relation, 'order_id', parent, 'rows_there')",
            relation=relation,
            parent=parent,
        )
        assert rows(conn, fast) == rows(conn, plain)


def test_dense_ids_with_one_repeat(conn) -> None:
    """The case the buckets are for: ids 1..1000, each once, then one of them twice."""
    conn.execute("create table orders as select range as order_id from range(1, 1001)")
    fast = expand("repeated_keys('orders', ['order_id'], 'order_id')")
    assert conn.execute(fast).fetchall() == []
    conn.execute("insert into orders values (500)")
    assert conn.execute(fast).fetchall() == [(500, 2)]
