{{ config(materialized='table') }}

-- Current promotion campaigns: the newest version of each campaign code.
select
    promotion_code,
    campaign_name,
    discount_pct,
    starts_on,
    ends_on,
    updated_at
from {{ source('promotions', 'campaigns') }}
qualify row_number() over (partition by promotion_code order by updated_at desc) = 1
