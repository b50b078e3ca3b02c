-- staging.stg_stores: one row per store, its name and address (contact details left out).
with stores as (
    select * from {{ source('stores') }}
)

select
    store_id,
    trim(store_name) as store_name,
    trim(street) as street,
    trim(city) as city,
    upper(trim(state)) as state,
    trim(zip_code) as zip_code
from stores
