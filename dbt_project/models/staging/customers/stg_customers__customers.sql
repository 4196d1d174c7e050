{{ config(materialized='table') }}

-- Current customer accounts, newest version per customer. PII is masked here, before anything
-- else can read it: email, phone and name become keyed hashes (pii_mask, key from the
-- environment), so analysts can still join and count distinct customers but never read them.
select
    customer_id,
    pii_mask(email) as email_hash,
    pii_mask(phone) as phone_hash,
    pii_mask(full_name) as full_name_hash,
    upper(country) as country,
    created_at,
    updated_at
from {{ source('customers', 'customers') }}
qualify row_number() over (partition by customer_id order by updated_at desc) = 1
