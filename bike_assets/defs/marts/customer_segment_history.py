"""marts.customer_segment_history: each customer's (segment, LTV tier) periods up to the as-of
date: who moved, and when (docs/tables.md, "marts.customer_segment_history")."""

from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
import duckdb

from bike_assets.defs.intermediate import ORDERS_ENRICHED
from bike_assets.defs.marts.customers_enriched import CUSTOMERS_ENRICHED
from bike_assets.defs.resources import Warehouse
from bike_assets.lib import checks
from bike_assets.lib.checks import LAYERS_AGREE
from bike_assets.lib.specs import Table
from bike_assets.lib.sql import render
from bike_assets.lib.warehouse import Model
from bike_assets.tools.charts import moves_chart

MOVES_WINDOW_DAYS = 30  # the chart's moves: those that started in the 30 days up to as_of_date
MOVES_SHOWN = 12  # the chart's bars: the most frequent moves

CUSTOMER_SEGMENT_HISTORY = Table(
    "marts",
    "customer_segment_history",
    "Every customer's segment and LTV tier over time, from their orders up to as_of_date: one "
    "row per customer and period in a (customer_segment, ltv_segment) pair. A period starts on "
    "the day of the order after which the customer's cumulative figures give a new pair, and "
    "ends the day before the next such day (valid_to null for the current period). Customers "
    "without orders have no row; the current rows agree with customers_enriched. Use it for "
    '"who became VIP this week" (valid_from in the week, customer_segment VIP, a previous row '
    "not VIP) without keeping a copy of customers_enriched per day.",
    [
        ("customer_id", "BIGINT", "Customer key."),
        ("customer_segment", "VARCHAR", "VIP, Loyal, Regular or New during the period."),
        ("ltv_segment", "VARCHAR", "Platinum, Gold, Silver or Bronze during the period."),
        ("valid_from", "DATE", "Day of the order that started the period."),
        ("valid_to", "DATE", "Day before the next period starts; null for the current one."),
        ("total_orders", "BIGINT", "Cumulative orders at the end of valid_from."),
        ("total_spent", "DECIMAL(18,2)", "Cumulative total_order_net_price at valid_from."),
        ("as_of_date", "DATE", "customers_enriched's as-of date: later orders are left out."),
    ],
    [
        "customer_id",
        "customer_segment",
        "ltv_segment",
        "valid_from",
        "valid_to",
        "total_orders",
        "total_spent",
    ],
    deps=[ORDERS_ENRICHED.key, CUSTOMERS_ENRICHED.key],
)

CUSTOMER_SEGMENT_HISTORY_CHECKS = {
    CUSTOMER_SEGMENT_HISTORY.key: [
        checks.columns_match_contract(CUSTOMER_SEGMENT_HISTORY),
        checks.unique_not_null("customer_id", "valid_from"),
        checks.rule(
            "history_one_current_row",
            "Each customer with an order up to as_of_date (customers_enriched's total_orders > "
            "0) has exactly one current row (valid_to null), and no other customer has any",
        ),
        checks.rule(
            "history_periods_connect",
            "A customer's periods neither overlap nor leave gaps: valid_to is the day before "
            "the next period's valid_from, null for the last; and consecutive periods differ "
            "in their (customer_segment, ltv_segment) pair",
        ),
        checks.rule(
            "history_dates_in_order",
            "valid_from <= valid_to (when set) and valid_from <= as_of_date",
        ),
        checks.rule(
            "history_segments_are_valid",
            "customer_segment and ltv_segment are those the rules give the row's cumulative "
            "total_orders (>= 1) and total_spent",
        ),
        LAYERS_AGREE["marts.customer_segment_history"],
    ]
}


def moves(conn: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str, int]]:
    """The moves that started in the MOVES_WINDOW_DAYS days up to as_of_date (as_of_date - 29
    to as_of_date): (from "segment / tier", to "segment / tier", customers), most first.

    A move is a period that has a previous one (a first order is not a move); the previous
    period is the one that ends the day before (periods connect, a check says so).
    """
    return conn.execute(
        f"""
        select
            before.customer_segment || ' / ' || before.ltv_segment as moved_from,
            after.customer_segment || ' / ' || after.ltv_segment as moved_to,
            count(*) as customers
        from {table} as after
        join {table} as before
            on before.customer_id = after.customer_id
            and before.valid_to = cast(after.valid_from - interval '1' day as date)
        where after.valid_from > cast(after.as_of_date - interval '{MOVES_WINDOW_DAYS}' day as date)
        group by all
        order by customers desc, moved_from, moved_to
        """
    ).fetchall()


def _moves_chart(conn: duckdb.DuckDBPyConnection, table: str) -> Mapping[str, Any]:
    """The last 30 days' moves, as a chart for the asset page: one bar per (from, to), the
    MOVES_SHOWN most frequent; the title gives the customers who moved and, when some kinds of
    move are left out, how many kinds there were."""
    (as_of,) = conn.execute(f"select max(as_of_date) from {table}").fetchone()
    found = moves(conn, table)
    moved = sum(n for _, _, n in found)
    title = f"Moves in the {MOVES_WINDOW_DAYS} days up to {as_of}: {moved:,} customer"
    title += "" if moved == 1 else "s"
    if len(found) > MOVES_SHOWN:
        title += f", the {MOVES_SHOWN} most frequent of {len(found)} kinds of move"
    return {"moves_last_30_days": moves_chart(title, found[:MOVES_SHOWN])}


@dg.multi_asset(
    name="customer_segment_history",
    outs={CUSTOMER_SEGMENT_HISTORY.name: CUSTOMER_SEGMENT_HISTORY.out},
    deps=CUSTOMER_SEGMENT_HISTORY.deps,
    check_specs=[c.spec(key) for key, cs in CUSTOMER_SEGMENT_HISTORY_CHECKS.items() for c in cs],
    can_subset=True,
)
def customer_segment_history(
    context: dg.AssetExecutionContext, warehouse: Warehouse
) -> Iterator[Any]:
    """Build marts.customer_segment_history (docs/tables.md, "marts.customer_segment_history").

    Its as-of date is customers_enriched's (read from that table, not from the calendar), so
    that the current rows agree with it even in a run that rebuilds only this table.
    """
    if CUSTOMER_SEGMENT_HISTORY.key in context.selected_asset_keys:
        yield dg.Output(
            Model(render("marts/customer_segment_history"), describe=_moves_chart),
            output_name=CUSTOMER_SEGMENT_HISTORY.name,
        )
    yield from warehouse.audit_step(context, CUSTOMER_SEGMENT_HISTORY_CHECKS)
