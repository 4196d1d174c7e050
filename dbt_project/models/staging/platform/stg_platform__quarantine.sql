{{ config(materialized='table') }}

-- Every quarantined record, with its reason reduced to the rule it broke (the part before
-- ", got"), so rejections can be counted by rule.
select
    source,
    {{ adapter.quote('partition') }} as partition_date,
    origin,
    position,
    raw,
    reason,
    split_part(reason, ', got ', 1) as rule
from {{ source('platform', 'quarantine') }}
