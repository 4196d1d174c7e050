{{ config(materialized='table') }}

-- Rejected records per source, day and rule: how healthy each service's data is.
select source, partition_date, rule, count(*) as records
from {{ ref('stg_platform__quarantine') }}
group by source, partition_date, rule
