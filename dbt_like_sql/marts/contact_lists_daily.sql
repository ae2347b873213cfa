/*
description: >
  The size of each workspace's synced address books, recorded once a day (the latest build of the day
  wins): the history that contact-list growth is read from. Counts only.
materialized: incremental
incremental_key: snapshot_date
partition_by: [snapshot_date]  # only today's counts are recomputed: earlier days are kept
columns:
  snapshot_date: UTC day of the count.
  workspace_id: The workspace.
  provider: gmail or outlook.
  connections: Connected address books.
  contacts: Contacts held.
  with_email: Contacts with an e-mail address.
  with_phone: Contacts with a phone number.
tests:
  - unique: [snapshot_date, workspace_id, provider]
  - not_null: [snapshot_date, workspace_id, provider, contacts]
  - accepted_values: {column: provider, values: [gmail, outlook]}
*/
WITH contacts AS (
    SELECT 'gmail' AS provider, connection_id, workspace_id, primary_email_bidx, primary_phone_bidx
    FROM raw_gmail.gmail_contacts
    UNION ALL
    SELECT 'outlook', connection_id, workspace_id, primary_email_bidx, primary_phone_bidx
    FROM raw_outlook.outlook_contacts
)
SELECT
    CAST(current_timestamp AS DATE) AS snapshot_date,
    workspace_id,
    provider,
    count(DISTINCT connection_id) AS connections,
    count(*) AS contacts,
    count(primary_email_bidx) AS with_email,
    count(primary_phone_bidx) AS with_phone
FROM contacts
WHERE CAST(current_timestamp AS DATE) >= getvariable('gtg_since')
GROUP BY ALL
