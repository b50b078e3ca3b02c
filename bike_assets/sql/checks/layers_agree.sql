-- Layers agree: {{ this }} has exactly the {{ key }}s of {{ ref(parent) }}, each once. A failing
-- row: a {{ key }} with its rows here and there (sql/macros/keys.sql).
{{ keys_not_once_in_both(this, key, ref(parent), 'rows_in_' ~ parent) }}
