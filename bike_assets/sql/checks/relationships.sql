-- Keys: every {{ column }} exists in {{ parent }}. A failing row: an id the parent lacks
-- (sql/macros/keys.sql).
{{ missing_references(this, column, ref(parent)) }}
