-- Layers agree: the current rows of {{ this }} (valid_to null) are customers_enriched's customers
-- with orders, in the same (customer_segment, ltv_segment) pair, as of the same date. Their
-- figures are those at valid_from (orders after it did not change the pair), so they are at most
-- customers_enriched's, which count every order up to the as-of date. A failing row: a customer
-- on one side only, or whose values disagree (both sides shown).
with current_rows as (
    select customer_id, customer_segment, ltv_segment, total_orders, total_spent, as_of_date
    from {{ this }}
    where valid_to is null
),

customers as (
    select customer_id, customer_segment, ltv_segment, total_orders, total_spent, as_of_date
    from {{ ref('customers_enriched') }}
    where total_orders > 0
)

select
    coalesce(current_rows.customer_id, customers.customer_id) as customer_id,
    current_rows.customer_segment as history_segment,
    customers.customer_segment as customers_segment,
    current_rows.ltv_segment as history_tier,
    customers.ltv_segment as customers_tier,
    current_rows.total_orders as history_orders,
    customers.total_orders as customers_orders,
    current_rows.total_spent as history_spent,
    customers.total_spent as customers_spent,
    current_rows.as_of_date as history_as_of_date,
    customers.as_of_date as customers_as_of_date
from current_rows
full join customers on customers.customer_id = current_rows.customer_id
where current_rows.customer_id is null
    or customers.customer_id is null
    or current_rows.customer_segment is distinct from customers.customer_segment
    or current_rows.ltv_segment is distinct from customers.ltv_segment
    or current_rows.as_of_date is distinct from customers.as_of_date
    or not (current_rows.total_orders <= customers.total_orders)
    or not (current_rows.total_spent <= customers.total_spent)
