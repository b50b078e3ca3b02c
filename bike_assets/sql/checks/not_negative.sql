-- Money: no negative amount.
select *
from {{ this }}
where {% for column in columns %}{{ column }} < 0{% if not loop.last %} or {% endif %}{% endfor %}
