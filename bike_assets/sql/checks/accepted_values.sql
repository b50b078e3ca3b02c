-- The column holds only its allowed values{% if nullable %} (or null){% endif %}.
select {{ column }}, count(*) as rows
from {{ this }}
where {{ column }} not in ({% for value in values %}'{{ value }}'{% if not loop.last %}, {% endif %}{% endfor %}){% if not nullable %} or {{ column }} is null{% endif %}
group by {{ column }}
