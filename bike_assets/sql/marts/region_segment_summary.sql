-- marts.region_segment_summary: one row per region and LTV tier, over the customers with at
-- least one order (docs/tables.md, "marts.region_segment_summary"). customer_segment here is
-- the LTV tier, as the seed names it.
with customers as (
    select * from {{ ref('customers_enriched') }}
    where total_orders > 0
)

select
    region,
    ltv_segment as customer_segment,
    count(distinct customer_id) as num_customers,
    {{ divide_half_up('sum(total_spent)', 'count(distinct customer_id)') }} as avg_ltv,
    {{ divide_half_up('sum(total_orders)', 'count(distinct customer_id)') }} as avg_orders
from customers
group by region, ltv_segment
order by region, avg_ltv desc, customer_segment
