/*
description: >
  The size of each workspace's contact lists per source (synced address books, the CRM app's contacts, uploaded
  lists), recorded once a day (the latest build of the day wins): the history that contact-list growth is read
  from. Counts only; a new source of `staging.stg_contacts` appears here as a new provider.
materialized: incremental
incremental_key: snapshot_date
partition_by: [snapshot_date]  # only today's counts are recomputed: earlier days are kept
columns:
  snapshot_date: UTC day of the count.
  workspace_id: The workspace.
  provider: The source - gmail, outlook, meta_leads, app or upload.
  connections: Connected accounts (gmail, outlook, meta_leads; 0 for the others).
  contacts: Contacts held.
  with_email: Contacts with an e-mail address.
  with_phone: Contacts with a phone number.
tests:
  - unique: [snapshot_date, workspace_id, provider]
  - not_null: [snapshot_date, workspace_id, provider, contacts]
  - accepted_values: {column: provider, values: [gmail, outlook, meta_leads, app, upload]}
*/
SELECT
    CAST(current_timestamp AS DATE) AS snapshot_date,
    workspace_id,
    source AS provider,
    count(DISTINCT connection_id) AS connections,
    count(*) AS contacts,
    count(email_key) AS with_email,
    count(phone_key) AS with_phone
FROM staging.stg_contacts
WHERE CAST(current_timestamp AS DATE) >= getvariable('gtg_since')
GROUP BY ALL
