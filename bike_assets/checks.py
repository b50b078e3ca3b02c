"""The checks that must hold on every published table (tables.md), one builder per rule, in SQL."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import dagster as dg
import duckdb

from bike_assets import rules

ERROR = dg.AssetCheckSeverity.ERROR
WARN = dg.AssetCheckSeverity.WARN
SAMPLE_ROWS = 5


@dataclass(frozen=True)
class Check:
    """A rule over one table: the SQL of the rows that break it (none means it passes).

    In `failing_rows`, `{this}` is the table being audited and `{name}` any table it reads.
    ERROR checks block publication; WARN checks only report.
    """

    name: str
    description: str
    failing_rows: str
    severity: dg.AssetCheckSeverity = ERROR

    def spec(self, asset_key: dg.AssetKey) -> dg.AssetCheckSpec:
        return dg.AssetCheckSpec(
            self.name,
            asset=asset_key,
            description=f"{self.description} ({self.severity.value})",
            blocking=self.severity == ERROR,
        )

    def run(
        self, conn: duckdb.DuckDBPyConnection, asset_key: dg.AssetKey, tables: Mapping[str, str]
    ) -> dg.AssetCheckResult:
        query = self.failing_rows.format(**tables)
        conn.execute(f"create or replace temp table __failing as {query}")
        (count,) = conn.execute("select count(*) from __failing").fetchone()
        sample = conn.execute(f"select * from __failing limit {SAMPLE_ROWS}")
        columns = [column[0] for column in sample.description]
        rows = sample.fetchall()
        return dg.AssetCheckResult(
            asset_key=asset_key,
            check_name=self.name,
            passed=count == 0,
            severity=self.severity,
            description=self.description,
            metadata={
                "failing_rows": dg.MetadataValue.int(count),
                "sample": dg.MetadataValue.md(markdown_table(columns, rows) if rows else "none"),
            },
        )


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table of rows, for check samples and table previews."""
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


# --- Contracts: every table -------------------------------------------------------------------


def columns_match(columns: Sequence[tuple[str, str]]) -> Check:
    """The table has exactly the declared columns, with the declared types."""
    expected = ", ".join(f"({i}, '{name}', '{kind}')" for i, (name, kind) in enumerate(columns))
    return Check(
        "columns_match_contract",
        "Columns and types are exactly those of the table's contract",
        f"""
        select coalesce(e.column_name, a.column_name) as column_name,
               e.column_type as expected_type, a.column_type as actual_type
        from (select column_name, column_type from (describe {{this}})) a
        full join (values {expected}) e(position, column_name, column_type) using (column_name)
        where a.column_type is distinct from e.column_type
        """,
    )


def primary_key(*columns: str) -> Check:
    """Keys: the primary key is unique and not null.

    Grouping a large table by its key is slow, so rows are first grouped 64 keys at a time: a
    row whose last key column is the whole number n goes to bucket n >> 6 (with the other key
    columns) as bit n & 63 of the bucket's mask. A bucket whose mask has one bit per row holds
    no repeated key; only the other buckets' rows, and rows with a null, are grouped by key.
    On dense ids (orders 1..3M, lines 1..n of each order) that is none. A value that is not a
    whole number has no bit (text) or shares one (1.5 and 2): its bucket is grouped by key.
    """
    key = ", ".join(columns)
    nulls = " or ".join(f"{column} is null" for column in columns)
    *rest, last = columns

    def number(table: str = "") -> str:
        return f"try_cast({table}{last} as bigint)"

    may_repeat = (
        f"select {', '.join([*rest, f'{number()} >> 6 as bucket'])} from {{this}} group by all "
        f"having coalesce(bit_count(bit_or(1::ubigint << ({number()} & 63))), 0) <> count(*)"
    )
    same_bucket = " and ".join(
        [f"t.{column} = b.{column}" for column in rest]
        + [f"({number('t.')} >> 6) is not distinct from b.bucket"]
    )
    t_key = ", ".join(f"t.{column}" for column in columns)
    t_nulls = " or ".join(f"t.{column} is null" for column in columns)
    return Check(
        f"{'_'.join(columns)}_is_unique_and_not_null",
        f"Primary key ({key}) is unique and not null",
        f"""
        select {key}, count(*) as rows from (
            select {key} from {{this}} where {nulls}
            union all
            select {t_key} from {{this}} t semi join ({may_repeat}) b on {same_bucket}
            where not ({t_nulls})
        ) group by {key} having count(*) > 1 or {nulls}
        """,
    )


def references(column: str, parent: str) -> Check:
    """Keys: every value of the column, a whole-number id, exists in the parent table (which
    has the same column).

    Ids are first compared 64 at a time, as bits of a mask per bucket id >> 6 (as in
    primary_key): only the rows of a bucket with an id that the parent's mask lacks are looked
    up in the parent one by one.
    """

    def masks(table: str) -> str:
        return (
            f"select {column} >> 6 as bucket, bit_or(1::ubigint << ({column} & 63)) as ids "
            f"from {table} where {column} is not null group by all"
        )

    lacking = (
        f"select c.bucket from ({masks('{this}')}) c left join ({masks(f'{{{parent}}}')}) p "
        "using (bucket) where p.ids is null or c.ids & ~p.ids <> 0"
    )
    return Check(
        f"{column}_exists_in_{parent}",
        f"Every {column} exists in {parent}",
        f"""
        select t.{column}, count(*) as rows from {{this}} t
        semi join ({lacking}) b on t.{column} >> 6 = b.bucket
        anti join {{{parent}}} p on t.{column} = p.{column}
        group by t.{column}
        """,
    )


def allowed_values(column: str, values: tuple[str, ...], nullable: bool = False) -> Check:
    """The column holds only its allowed values."""
    null_rule = "" if nullable else f" or {column} is null"
    return Check(
        f"{column}_is_allowed",
        f"{column} is one of {', '.join(values)}" + (" (or null)" if nullable else ""),
        f"select {column}, count(*) as rows from {{this}} "
        f"where {column} not in {rules.sql_list(values)}{null_rule} group by {column}",
    )


def not_negative(*columns: str) -> Check:
    """Money: no negative amount."""
    negative = " or ".join(f"{column} < 0" for column in columns)
    return Check(
        "no_negative_amounts",
        f"No negative amount in {', '.join(columns)}",
        f"select * from {{this}} where {negative}",
    )


# --- Segment validity: customers_enriched and region_segment_summary ---------------------------


def customer_segment_is_valid() -> Check:
    expected = rules.customer_segment("total_orders", "total_spent")
    return Check(
        "customer_segment_is_valid",
        "customer_segment is VIP, Loyal, Regular or New, and the one its metrics give",
        f"select customer_id, total_orders, total_spent, customer_segment, "
        f"{expected} as expected_segment from {{this}} "
        f"where customer_segment is distinct from {expected}",
    )


def ltv_segment_is_valid() -> Check:
    expected = rules.ltv_segment("total_spent")
    return Check(
        "ltv_segment_is_valid",
        "ltv_segment is Platinum, Gold, Silver or Bronze (null without orders), per total_spent",
        f"select customer_id, total_spent, ltv_segment, {expected} as expected_tier "
        f"from {{this}} where ltv_segment is distinct from {expected}",
    )


def summary_customers_add_up() -> Check:
    return Check(
        "customers_add_up",
        "num_customers adds up to the customers with at least one order",
        """
        select summarized, with_orders from (
            select (select coalesce(sum(num_customers), 0) from {this}) as summarized,
                   (select count(*) from {customers_enriched} where total_orders > 0) as with_orders
        ) where summarized <> with_orders
        """,
    )


# --- Money and dates: customers_enriched --------------------------------------------------------


def money_adds_up() -> Check:
    return Check(
        "money_adds_up",
        "Net prices of all orders up to as_of_date add up to the sum of total_spent",
        """
        select as_of_date, orders_net_price, customers_total_spent from (
            select as_of_date, coalesce(sum(total_spent), 0) as customers_total_spent
            from {this} group by as_of_date
        ) c, lateral (
            select coalesce(sum(total_order_net_price), 0) as orders_net_price
            from {orders_enriched} o where o.order_date <= c.as_of_date
        ) o
        where orders_net_price <> customers_total_spent
        """,
    )


def dates_in_order() -> Check:
    return Check(
        "dates_in_order",
        "first_order_date <= last_order_date <= as_of_date",
        "select customer_id, first_order_date, last_order_date, as_of_date from {this} "
        "where first_order_date > last_order_date or last_order_date > as_of_date",
    )


# --- Suspicious, not wrong (WARN) ---------------------------------------------------------------


def orders_have_lines() -> Check:
    return Check(
        "orders_have_lines",
        "Every order has at least one line",
        "select order_id, customer_id, order_date from {this} where total_items = 0",
        WARN,
    )


def regions_are_known() -> Check:
    return Check(
        "regions_are_known",
        "Every customer's state is a US state code with a census region",
        "select state, count(*) as customers from {this} where region = 'Unknown' group by state",
        WARN,
    )


def no_rejected_rows() -> Check:
    return Check(
        "no_rejected_rows",
        "The export had no row to quarantine",
        "select file, line, key, reason from {this}",
        WARN,
    )
