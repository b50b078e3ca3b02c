-- Keys: every {{ column }} exists in {{ parent }}. A failing row: an id the parent lacks.
select child.{{ column }}, count(*) as rows
from {{ this }} as child
anti join {{ ref(parent) }} as parent on parent.{{ column }} = child.{{ column }}
where child.{{ column }} is not null
group by child.{{ column }}
