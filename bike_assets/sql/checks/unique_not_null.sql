-- Keys: the primary key is unique and not null. A failing row: a key that repeats or has a null.
select {{ columns | join(', ') }}, count(*) as rows
from {{ this }}
group by {{ columns | join(', ') }}
having count(*) > 1 or {% for column in columns %}{{ column }} is null{% if not loop.last %} or {% endif %}{% endfor %}
