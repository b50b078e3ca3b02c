-- History: a customer's periods neither overlap nor leave gaps, and each is a change. Ordered by
-- valid_from, each period ends the day before the next one starts, only the last one is open
-- (valid_to null), and the next period's (customer_segment, ltv_segment) pair differs from this
-- one's (else the two would be one period). A failing row: a period that breaks one of these.
with periods as (
    select
        customer_id,
        valid_from,
        valid_to,
        customer_segment,
        ltv_segment,
        lead(valid_from) over next_period as next_valid_from,
        lead(customer_segment) over next_period as next_segment,
        lead(ltv_segment) over next_period as next_tier
    from {{ this }}
    window next_period as (partition by customer_id order by valid_from)
)

select
    customer_id,
    valid_from,
    valid_to,
    next_valid_from,
    cast(next_valid_from - interval '1' day as date) as expected_valid_to,
    customer_segment,
    ltv_segment,
    next_segment,
    next_tier
from periods
where valid_to is distinct from cast(next_valid_from - interval '1' day as date)
    or (customer_segment = next_segment and ltv_segment = next_tier)
