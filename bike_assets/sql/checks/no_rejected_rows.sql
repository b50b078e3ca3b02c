-- WARN: rows of the export that were quarantined.
select file, line, key, column_name, reason
from {{ this }}
