-- Segment validity: the summary's customers add up to the customers with at least one order.
with summarized as (
    select coalesce(sum(num_customers), 0) as customers from {{ this }}
),

with_orders as (
    select count(*) as customers from {{ ref('customers_enriched') }} where total_orders > 0
)

select summarized.customers as summarized, with_orders.customers as with_orders
from summarized cross join with_orders
where summarized.customers <> with_orders.customers
