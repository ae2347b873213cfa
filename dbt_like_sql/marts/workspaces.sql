/*
description: One row per workspace that sent usage events, with its first and last activity.
materialized: table
columns:
  workspace_id: The workspace.
  first_event_at: Its first event.
  last_event_at: Its latest event.
  events: Events loaded.
  visitors: Distinct pseudonymous visitors.
  users: Distinct pseudonymous signed-in users.
tests:
  - unique: workspace_id
  - not_null: [workspace_id, first_event_at, last_event_at, events]
*/
SELECT
    workspace_id,
    min(occurred_at) AS first_event_at,
    max(occurred_at) AS last_event_at,
    count(*) AS events,
    count(DISTINCT visitor_key) AS visitors,
    count(DISTINCT user_key) AS users
FROM staging.stg_events
GROUP BY workspace_id
