/*
description: One row per workspace with consenting visitors, with its first and last day of activity.
materialized: table
columns:
  workspace_id: The workspace.
  first_active_date: Its first day with a visitor.
  last_active_date: Its latest day with a visitor.
  events: Events of its consenting visitors.
  visitors: Distinct pseudonymous visitors.
  users: Distinct pseudonymous signed-in users.
tests:
  - unique: workspace_id
  - not_null: [workspace_id, first_active_date, last_active_date, events]
*/
SELECT
    workspace_id,
    min(event_date) AS first_active_date,
    max(event_date) AS last_active_date,
    sum(events) AS events,
    count(DISTINCT visitor_key) AS visitors,
    count(DISTINCT user_key) AS users
FROM analytics.visitor_days
GROUP BY workspace_id
