-- marts.customer_segment_history: one row per customer and period in a (customer_segment,
-- ltv_segment) pair, from their orders up to the as-of date (docs/tables.md,
-- "marts.customer_segment_history"). One pass over the orders: figures per order day, running
-- totals (one sort), the pair the rules give before and after each day, a row wherever they
-- differ, and valid_to from the next row (a second sort, of the period starts only).

-- The run's as-of date is customers_enriched's: the two tables describe the same day, so their
-- current rows agree even when a run rebuilds only one of them.
with as_of as (
    select max(as_of_date) as as_of_date from {{ ref('customers_enriched') }}
),

-- The state of the business as of that date: later orders are left out.
orders as (
    select customer_id, order_date, total_order_net_price
    from {{ ref('orders_enriched') }}
    where order_date <= (select as_of_date from as_of)
),

-- Several orders on one day count together: one change per day at most.
order_days as (
    select
        customer_id,
        order_date,
        count(*) as orders_that_day,
        cast(sum(total_order_net_price) as decimal(18, 2)) as spent_that_day
    from orders
    group by customer_id, order_date
),

-- The customer's cumulative figures at the end of each order day (one sort of the order days).
running_totals as (
    select
        customer_id,
        order_date,
        orders_that_day,
        spent_that_day,
        cast(sum(orders_that_day) over by_day as bigint) as total_orders,
        cast(sum(spent_that_day) over by_day as decimal(18, 2)) as total_spent
    from order_days
    window by_day as (
        partition by customer_id order by order_date
        rows between unbounded preceding and current row
    )
),

-- The pair the rules of customers_enriched give the figures at the end of the day, and the
-- pair they gave at the end of the previous order day (the figures less that day's: the same
-- as lag() of the pair, without a second sort). Same macros: the cut-offs are written once.
daily_segments as (
    select
        customer_id,
        order_date,
        total_orders,
        total_spent,
        {{ customer_segment('total_orders', 'total_spent') }} as customer_segment,
        {{ ltv_segment('total_spent') }} as ltv_segment,
        total_orders - orders_that_day as orders_before,
        {{ customer_segment('total_orders - orders_that_day', 'total_spent - spent_that_day') }} as segment_before,
        {{ ltv_segment('total_spent - spent_that_day') }} as tier_before
    from running_totals
),

-- A period starts on the customer's first order day, and on each day whose pair differs
-- from the one before it.
period_starts as (
    select *
    from daily_segments
    where orders_before = 0
        or customer_segment <> segment_before
        or ltv_segment <> tier_before
)

select
    customer_id,
    customer_segment,
    ltv_segment,
    order_date as valid_from,
    -- the day before the next period starts; null for the current period
    cast(lead(order_date) over (partition by customer_id order by order_date) - interval '1' day as date) as valid_to,
    total_orders,
    total_spent,
    (select as_of_date from as_of) as as_of_date
from period_starts
