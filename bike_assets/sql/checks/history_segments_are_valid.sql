-- Segment validity: each period's customer_segment and ltv_segment are those the rules give its
-- cumulative figures at valid_from (a customer in the history has at least one order, so a
-- tier). A failing row: figures missing, or a segment or tier the rules do not give them.
select
    customer_id, valid_from, total_orders, total_spent, customer_segment, ltv_segment,
    {{ customer_segment('total_orders', 'total_spent') }} as expected_segment,
    {{ ltv_segment('total_spent') }} as expected_tier
from {{ this }}
where total_orders is null or total_orders < 1 or total_spent is null
    or customer_segment is distinct from {{ customer_segment('total_orders', 'total_spent') }}
    or ltv_segment is distinct from {{ ltv_segment('total_spent') }}
