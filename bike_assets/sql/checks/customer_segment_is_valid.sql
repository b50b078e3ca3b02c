-- Segment validity: customer_segment is the one the rules give for the row's metrics.
select
    customer_id, total_orders, total_spent, customer_segment,
    {{ customer_segment('total_orders', 'total_spent') }} as expected_segment
from {{ this }}
where customer_segment is distinct from {{ customer_segment('total_orders', 'total_spent') }}
