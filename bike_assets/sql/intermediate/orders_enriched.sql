-- intermediate.orders_enriched: one row per order with its store, status, delivery and the
-- totals of its lines (docs/tables.md, "intermediate.orders_enriched").
with orders as (
    select * from {{ ref('stg_orders') }}
),

stores as (
    select store_id, store_name from {{ ref('stg_stores') }}
),

-- Lines with quantity <= 0 (returns, cancelled lines) are ignored.
counted_lines as (
    select * from {{ ref('stg_order_items') }}
    where {{ counts_toward_order('quantity') }}
),

order_totals as (
    select
        order_id,
        cast(sum(quantity) as bigint) as total_items,
        count(distinct product_id) as unique_products,
        -- exact per line, rounded once per order
        {{ cents_half_up('sum(' ~ line_net_price('list_price', 'quantity', 'discount') ~ ')') }} as total_order_net_price
    from counted_lines
    group by order_id
)

select
    orders.order_id,
    orders.customer_id,
    orders.store_id,
    stores.store_name,
    orders.staff_id,
    orders.order_status,
    {{ order_status_label('orders.order_status') }} as order_status_label,
    orders.order_date,
    orders.required_date,
    orders.shipped_date,
    {{ delivery_status('orders.order_date', 'orders.required_date', 'orders.shipped_date') }} as delivery_status,
    {{ days_to_ship('orders.order_date', 'orders.shipped_date') }} as days_to_ship,
    coalesce(order_totals.total_items, 0) as total_items,
    coalesce(order_totals.unique_products, 0) as unique_products,
    coalesce(order_totals.total_order_net_price, 0) as total_order_net_price
from orders
left join stores on stores.store_id = orders.store_id
left join order_totals on order_totals.order_id = orders.order_id
