-- Segment validity: ltv_segment is the tier the rules give for total_spent (null without orders).
select
    customer_id, total_spent, ltv_segment,
    {{ ltv_segment('total_spent') }} as expected_tier
from {{ this }}
where ltv_segment is distinct from {{ ltv_segment('total_spent') }}
