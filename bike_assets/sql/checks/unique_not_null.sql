-- Keys: the primary key is unique and not null. A failing row: a key that repeats or has a null
-- (sql/macros/keys.sql: `id` is the key's whole-number id, when it has one).
{{ repeated_keys(this, columns, id) }}
