-- History: valid_from <= valid_to (when set) and valid_from <= as_of_date (no period starts
-- after the day the table describes).
select customer_id, valid_from, valid_to, as_of_date
from {{ this }}
where valid_from > valid_to or valid_from > as_of_date or as_of_date is null
