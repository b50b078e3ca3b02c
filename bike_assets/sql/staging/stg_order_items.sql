-- staging.stg_order_items: one row per order line, as exported (a line repeated identically
-- kept once; faulty lines quarantined). Lines with quantity <= 0 (returns) are kept here.
with order_items as (
    select * from {{ source('order_items') }}
)

select
    order_id,
    item_id,
    product_id,
    quantity,
    list_price,
    discount
from order_items
