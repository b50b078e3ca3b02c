-- WARN: order lines with quantity <= 0 (returns, cancelled lines), kept here and ignored by
-- orders_enriched.
select order_id, item_id, product_id, quantity
from {{ this }}
where not ({{ counts_toward_order('quantity') }})
