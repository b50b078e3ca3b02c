-- WARN: shipped orders whose delivery cannot be judged (delivery_status Unknown): no required
-- date, or shipped before they were placed.
select order_id, order_date, required_date, shipped_date
from {{ this }}
where delivery_status = 'Unknown'
