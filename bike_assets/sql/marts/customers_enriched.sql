-- marts.customers_enriched: one row per customer of stg_customers, their order activity and
-- segments as of the run's as-of date (docs/tables.md, "marts.customers_enriched").
with customers as (
    select * from {{ ref('stg_customers') }}
),

-- The state of the business as of that date: later orders are left out.
orders as (
    select * from {{ ref('orders_enriched') }}
    where order_date <= {{ as_of_date }}
),

customer_orders as (
    select
        customer_id,
        count(*) as total_orders,
        sum(total_order_net_price) as total_spent,
        min(order_date) as first_order_date,
        max(order_date) as last_order_date,
        cast(sum(total_items) as bigint) as total_items_purchased
    from orders
    group by customer_id
),

store_orders as (
    select
        customer_id,
        store_id,
        any_value(store_name) as store_name,
        count(*) as orders_at_store,
        max(order_date) as latest_order_at_store
    from orders
    group by customer_id, store_id
),

primary_store as (
    select customer_id, store_id, store_name
    from store_orders
    qualify {{ primary_store_rank('customer_id', 'orders_at_store', 'latest_order_at_store', 'store_id') }} = 1
)

select
    customers.customer_id,
    customers.gender,
    customers.email_hash,
    customers.city,
    customers.state,
    customers.region,
    primary_store.store_id,
    primary_store.store_name,
    customer_orders.total_orders,
    cast(customer_orders.total_spent as decimal(18, 2)) as total_spent,
    {{ divide_half_up('customer_orders.total_spent', 'customer_orders.total_orders') }} as avg_order_value,
    customer_orders.first_order_date,
    customer_orders.last_order_date,
    customer_orders.total_items_purchased,
    {{ days_between('customer_orders.last_order_date', as_of_date) }} as days_since_last_order,
    {{ customer_segment('customer_orders.total_orders', 'customer_orders.total_spent') }} as customer_segment,
    {{ ltv_segment('customer_orders.total_spent') }} as ltv_segment,
    {{ as_of_date }} as as_of_date
from customers
left join customer_orders on customer_orders.customer_id = customers.customer_id
left join primary_store on primary_store.customer_id = customers.customer_id
