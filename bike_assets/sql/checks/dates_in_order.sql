-- Dates: first_order_date <= last_order_date <= as_of_date.
select customer_id, first_order_date, last_order_date, as_of_date
from {{ this }}
where first_order_date > last_order_date or last_order_date > as_of_date
