{{
    config(
        on_schema_change='append_new_columns',
        **partition_window_config('session_date')
    )
}}

-- One row per visitor session on a channel, partitioned by the day the session started.
-- A session reported twice under different event ids counts once (latest report wins).
select
    session_id,
    occurred_at as started_at,
    cast(dt as date) as session_date,
    channel,
    customer_id,
    page_views,
    order_id
from {{ source('clickstream', 'sessions') }}
where {{ in_partition_window('dt') }}
qualify row_number() over (partition by session_id order by occurred_at desc, event_id desc) = 1
