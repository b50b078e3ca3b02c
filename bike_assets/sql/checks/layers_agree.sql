-- Layers agree: {{ this }} has exactly the {{ key }}s of {{ ref(parent) }}, each once.
with here as (
    select {{ key }}, count(*) as rows_here from {{ this }} group by {{ key }}
),

there as (
    select {{ key }}, count(*) as rows_there from {{ ref(parent) }} group by {{ key }}
)

select
    coalesce(here.{{ key }}, there.{{ key }}) as {{ key }},
    coalesce(here.rows_here, 0) as rows_here,
    coalesce(there.rows_there, 0) as rows_in_{{ parent }}
from here
full join there on there.{{ key }} = here.{{ key }}
where here.rows_here is distinct from there.rows_there
