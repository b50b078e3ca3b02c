-- Money: the net prices of all orders up to as_of_date add up to the sum of total_spent.
with customers as (
    select as_of_date, coalesce(sum(total_spent), 0) as customers_total_spent
    from {{ this }}
    group by as_of_date
),

orders as (
    select customers.as_of_date, coalesce(sum(orders.total_order_net_price), 0) as orders_net_price
    from customers
    left join {{ ref('orders_enriched') }} as orders on orders.order_date <= customers.as_of_date
    group by customers.as_of_date
)

select customers.as_of_date, orders.orders_net_price, customers.customers_total_spent
from customers
join orders on orders.as_of_date = customers.as_of_date
where orders.orders_net_price <> customers.customers_total_spent
