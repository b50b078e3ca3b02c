{#-
  The key checks of docs/tables.md ("Checks that must hold": keys; "Layers agree"), in a form
  that stays fast on tables of millions of rows. Each macro returns exactly the rows of the
  plain query written above it; bike_assets_tests/sql/test_keys.py compares the two on random
  keys (DuckDB) and the engines' tests run them on Spark.

  How: whole-number ids are looked at 32 at a time. Id n belongs to bucket n >> 5, as bit
  n & 31 of that bucket's mask (bit_or of 1 << (n & 31)). A bucket whose mask has as many bits
  as it has rows holds each of its ids once; two buckets with the same mask hold the same ids.
  Only the ids of the buckets that this does not settle (and nulls) are then grouped one by
  one, as the plain query groups them all: on dense ids (1, 2, 3, ...) that is none.
-#}

{#- A whole-number id's bucket, and the mask of a bucket's ids (SQL over the id). -#}
{% macro _bucket(id) -%}
{{ id }} >> 5
{%- endmacro %}

{% macro _mask(id) -%}
bit_or(cast(1 as bigint) << ({{ id }} & 31))
{%- endmacro %}

{#- repeated_keys(relation, columns, id): the keys (columns) of `relation` that more than one
    row has or that have a null, with their rows. `id`: the column to bucket by, one of the
    columns, best a whole-number id (of another type, its values are read as whole numbers
    where they can be: values that read as the same number only crowd their bucket); none:
    the plain query. Plain SQL:

        select <columns>, count(*) as rows
        from <relation>
        group by <columns>
        having count(*) > 1 or <column> is null (for each column)
-#}
{% macro repeated_keys(relation, columns, id=none) -%}
{%- set key = columns | join(', ') -%}
{%- set any_null -%}
{% for column in columns %}{{ column }} is null{% if not loop.last %} or {% endif %}{% endfor %}
{%- endset -%}
{%- if id is none -%}
select {{ key }}, count(*) as rows
from {{ relation }}
group by {{ key }}
having count(*) > 1 or {{ any_null }}
{%- else -%}
{%- set others = columns | reject('equalto', id) | list -%}
{%- set number = 'try_cast(' ~ id ~ ' as bigint)' -%}
select {{ key }}, count(*) as rows
from (
    -- rows that no bucket settles: a null, an id that is not a whole number
    select {{ key }} from {{ relation }} where {{ any_null }} or {{ number }} is null
    union all
    -- rows of a crowded bucket: fewer bits than rows, so an id may repeat there
    select {% for column in columns %}keyed.{{ column }}{% if not loop.last %}, {% endif %}{% endfor %}
    from {{ relation }} as keyed
    semi join (
        select {% for column in others %}{{ column }}, {% endfor %}{{ _bucket(number) }} as bucket
        from {{ relation }}
        where {{ number }} is not null
        group by {% for column in others %}{{ column }}, {% endfor %}{{ _bucket(number) }}
        having bit_count({{ _mask(number) }}) <> count(*)
    ) as crowded
    on {% for column in others %}crowded.{{ column }} = keyed.{{ column }} and {% endfor %}crowded.bucket = {{ _bucket('try_cast(keyed.' ~ id ~ ' as bigint)') }}
) as candidates
group by {{ key }}
having count(*) > 1 or {{ any_null }}
{%- endif -%}
{%- endmacro %}

{#- missing_references(relation, column, parent): the values of `column` (a whole-number id:
    BIGINT or INTEGER) in `relation` that no row of `parent` (a table with the same column)
    has, with their rows. Plain SQL:

        select child.<column>, count(*) as rows
        from <relation> as child
        anti join <parent> as parent on parent.<column> = child.<column>
        where child.<column> is not null
        group by child.<column>
-#}
{% macro missing_references(relation, column, parent) -%}
with child_masks as (
    select {{ _bucket(column) }} as bucket, {{ _mask(column) }} as ids
    from {{ relation }} where {{ column }} is not null group by {{ _bucket(column) }}
),

parent_masks as (
    select {{ _bucket(column) }} as bucket, {{ _mask(column) }} as ids
    from {{ parent }} where {{ column }} is not null group by {{ _bucket(column) }}
),

-- buckets holding an id that the parent's same bucket lacks
lacking as (
    select child_masks.bucket
    from child_masks
    left join parent_masks on parent_masks.bucket = child_masks.bucket
    where parent_masks.ids is null or (child_masks.ids & ~parent_masks.ids) <> 0
)

select child.{{ column }}, count(*) as rows
from {{ relation }} as child
anti join {{ parent }} as parent on parent.{{ column }} = child.{{ column }}
where {{ _bucket('child.' ~ column) }} in (select bucket from lacking)
group by child.{{ column }}
{%- endmacro %}

{#- keys_not_once_in_both(relation, key, parent, parent_rows): the values of `key` (a
    whole-number id: BIGINT or INTEGER) that `relation` and `parent` do not hold as many
    times, with their rows in each (`rows_here`, and `parent_rows` for the parent's). Plain
    SQL:

        with here as (select <key>, count(*) as rows_here from <relation> group by <key>),
        there as (select <key>, count(*) as rows_there from <parent> group by <key>)
        select coalesce(here.<key>, there.<key>) as <key>,
               coalesce(here.rows_here, 0) as rows_here,
               coalesce(there.rows_there, 0) as <parent_rows>
        from here full join there on there.<key> = here.<key>
        where here.rows_here is distinct from there.rows_there
-#}
{% macro keys_not_once_in_both(relation, key, parent, parent_rows) -%}
with here_masks as (
    select {{ _bucket(key) }} as bucket, {{ _mask(key) }} as ids, count(*) as rows
    from {{ relation }} where {{ key }} is not null group by {{ _bucket(key) }}
),

there_masks as (
    select {{ _bucket(key) }} as bucket, {{ _mask(key) }} as ids, count(*) as rows
    from {{ parent }} where {{ key }} is not null group by {{ _bucket(key) }}
),

-- buckets that do not hold the same ids on both sides, each once
unsettled as (
    select coalesce(here_masks.bucket, there_masks.bucket) as bucket
    from here_masks
    full join there_masks on there_masks.bucket = here_masks.bucket
    where here_masks.ids is distinct from there_masks.ids
        or here_masks.rows <> bit_count(here_masks.ids)
        or there_masks.rows <> bit_count(there_masks.ids)
),

here as (
    select {{ key }}, count(*) as rows_here from {{ relation }}
    where {{ key }} is null or {{ _bucket(key) }} in (select bucket from unsettled)
    group by {{ key }}
),

there as (
    select {{ key }}, count(*) as rows_there from {{ parent }}
    where {{ key }} is null or {{ _bucket(key) }} in (select bucket from unsettled)
    group by {{ key }}
)

select
    coalesce(here.{{ key }}, there.{{ key }}) as {{ key }},
    coalesce(here.rows_here, 0) as rows_here,
    coalesce(there.rows_there, 0) as {{ parent_rows }}
from here
full join there on there.{{ key }} = here.{{ key }}
where here.rows_here is distinct from there.rows_there
{%- endmacro %}
