-- staging.stg_orders: one row per order header, as exported; orders of unknown customers or
-- stores were quarantined (staging.rejected_rows).
with orders as (
    select * from {{ source('orders') }}
)

select
    order_id,
    customer_id,
    order_status,
    order_date,
    required_date,
    shipped_date,
    store_id,
    staff_id
from orders
