-- WARN: an order without a counted line (total_items 0).
select order_id, customer_id, order_date
from {{ this }}
where total_items = 0
