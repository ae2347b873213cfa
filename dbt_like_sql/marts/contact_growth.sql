/*
description: Contact-list growth per workspace and provider, day over day, from contact_lists_daily.
materialized: view
columns:
  snapshot_date: UTC day of the count.
  workspace_id: The workspace.
  provider: gmail or outlook.
  contacts: Contacts held that day.
  change: Contacts gained (or lost, negative) since the previous recorded day; null on the first day.
*/
SELECT
    snapshot_date,
    workspace_id,
    provider,
    contacts,
    contacts - lag(contacts) OVER (PARTITION BY workspace_id, provider ORDER BY snapshot_date) AS change
FROM analytics.contact_lists_daily
