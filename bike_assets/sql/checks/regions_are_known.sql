-- WARN: customers whose state is not a US state code (region Unknown).
select state, count(*) as customers
from {{ this }}
where region = 'Unknown'
group by state
