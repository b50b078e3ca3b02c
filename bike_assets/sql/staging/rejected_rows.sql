-- staging.rejected_rows: the export's rows that were quarantined instead of loaded.
with rejected as (
    select * from {{ source('rejected_rows') }}
)

select file, line, key, column_name, reason
from rejected
