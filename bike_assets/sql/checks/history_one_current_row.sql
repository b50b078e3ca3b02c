-- History: each customer with an order up to the as-of date (customers_enriched's customers with
-- total_orders > 0: the history's as-of date is theirs) has exactly one current row (valid_to
-- null), and no other customer has one. A failing row: a customer with orders and 0 or 2+
-- current rows, or a current row of a customer without orders.
with customers_with_orders as (
    select customer_id
    from {{ ref('customers_enriched') }}
    where total_orders > 0
),

current_rows as (
    select customer_id, count(*) as current_rows
    from {{ this }}
    where valid_to is null
    group by customer_id
)

select
    coalesce(customers_with_orders.customer_id, current_rows.customer_id) as customer_id,
    customers_with_orders.customer_id is not null as has_orders,
    coalesce(current_rows.current_rows, 0) as current_rows
from customers_with_orders
full join current_rows on current_rows.customer_id = customers_with_orders.customer_id
where customers_with_orders.customer_id is null or current_rows.current_rows is distinct from 1
