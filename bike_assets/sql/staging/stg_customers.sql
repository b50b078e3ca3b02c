-- staging.stg_customers: one row per customer (docs/tables.md, "staging.stg_customers").
-- Names trimmed, state upper case, email and phone only as keyed hashes, census region and
-- gender from the lookups that ship with the project.
with customers as (
    select * from {{ source('customers') }}
),

regions as (
    select state, region from {{ source('us_census_regions') }}
),

genders as (
    select first_name, gender from {{ source('first_name_genders') }}
)

select
    customers.customer_id,
    trim(customers.first_name) as first_name,
    trim(customers.last_name) as last_name,
    {{ keyed_hash(normalized_email('customers.email')) }} as email_hash,
    {{ keyed_hash(normalized_phone('customers.phone')) }} as phone_hash,
    trim(customers.city) as city,
    upper(trim(customers.state)) as state,
    trim(customers.zip_code) as zip_code,
    {{ census_region('regions.region') }} as region,
    {{ gender('genders.gender') }} as gender
from customers
left join regions on regions.state = upper(trim(customers.state))
left join genders on genders.first_name = lower(trim(customers.first_name))
