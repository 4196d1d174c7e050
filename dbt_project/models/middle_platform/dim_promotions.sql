{{ config(materialized='table') }}

-- Promotion campaigns as the promotions service describes them now: what analysts join the
-- daily promotion figures (scenario.promotion_performance_daily) to for names and discounts.
select
    promotion_code,
    campaign_name,
    discount_pct,
    starts_on,
    ends_on,
    updated_at
from {{ ref('stg_promotions__campaigns') }}
