-- Contract: the table has exactly its declared columns, with their declared types.
-- Only the checked database's table: a run's new version has the published one attached,
-- whose table of the same name may still have an older contract's columns.
with actual as (
    select column_name, data_type
    from information_schema.columns
    where table_catalog = current_database()
        and table_schema = '{{ schema }}' and table_name = '{{ table }}'
),

expected (column_name, data_type) as (
    values {% for name, type in columns %}('{{ name }}', '{{ type }}'){% if not loop.last %}, {% endif %}{% endfor %}
)

select
    coalesce(expected.column_name, actual.column_name) as column_name,
    expected.data_type as expected_type,
    actual.data_type as actual_type
from expected
full join actual on actual.column_name = expected.column_name
where actual.data_type is distinct from expected.data_type
