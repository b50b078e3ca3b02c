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
        count(product_id) as lines_with_a_product,
        -- product ids as bits of a mask (id & 31): as many bits as lines, no product repeats
        bit_count(bit_or(cast(1 as bigint) << (product_id & 31))) as product_bits,
        -- exact per line, rounded once per order
        {{ cents_half_up('sum(' ~ line_net_price('list_price', 'quantity', 'discount') ~ ')') }} as total_order_net_price
    from counted_lines
    group by order_id
),

-- unique_products is count(distinct product_id); counted so only where the mask cannot tell
-- (a product repeated, or two ids sharing a bit): the other orders' lines are each a product.
-- The counted lines are read again here: a CTE read twice would be held in memory whole.
repeated_products as (
    select order_id, count(distinct product_id) as unique_products
    from {{ ref('stg_order_items') }}
    where {{ counts_toward_order('quantity') }} and order_id in (
        select order_id from order_totals where product_bits <> lines_with_a_product
    )
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
    coalesce(repeated_products.unique_products, order_totals.lines_with_a_product, 0) as unique_products,
    coalesce(order_totals.total_order_net_price, 0) as total_order_net_price
from orders
left join stores on stores.store_id = orders.store_id
left join order_totals on order_totals.order_id = orders.order_id
left join repeated_products on repeated_products.order_id = orders.order_id
