/*
description: >
  One row per workspace the CRM app's database lists or that has consenting visitors: its plan and seats from
  the app, its first and last day of activity from the events.
materialized: table
columns:
  workspace_id: The workspace.
  plan: Its plan in the app (free, starter, growth, enterprise); null for a workspace only seen in events.
  seats: Seats it pays for.
  created_date: UTC day the workspace was created in the app.
  closed_date: UTC day it was closed, if it was.
  first_active_date: Its first day with a visitor; null without one.
  last_active_date: Its latest day with a visitor.
  events: Events of its consenting visitors.
  visitors: Distinct pseudonymous visitors.
  users: Distinct pseudonymous signed-in users.
tests:
  - unique: workspace_id
  - not_null: [workspace_id, events, visitors, users]
*/
-- One small aggregation per measure, joined by workspace: counting two distinct columns in one aggregation
-- makes DuckDB materialise every visitor-day first, at half as much again.
WITH activity AS (
    SELECT workspace_id, min(event_date) AS first_active_date, max(event_date) AS last_active_date,
           sum(events)::BIGINT AS events
    FROM analytics.visitor_days
    GROUP BY workspace_id
),
visitors AS (
    SELECT workspace_id, count(*) AS visitors
    FROM (SELECT DISTINCT workspace_id, visitor_key FROM analytics.visitor_days)
    GROUP BY workspace_id
),
users AS (
    SELECT workspace_id, count(*) AS users
    FROM (SELECT DISTINCT workspace_id, user_key FROM analytics.visitor_days WHERE user_key IS NOT NULL)
    GROUP BY workspace_id
),
active AS (
    SELECT workspace_id, first_active_date, last_active_date, events, visitors, coalesce(users, 0) AS users
    FROM activity JOIN visitors USING (workspace_id) LEFT JOIN users USING (workspace_id)
)
SELECT
    workspace_id,
    app.plan,
    app.seats,
    CAST(app.created_at AS DATE) AS created_date,
    CAST(app.closed_at AS DATE) AS closed_date,
    active.first_active_date,
    active.last_active_date,
    coalesce(active.events, 0) AS events,
    coalesce(active.visitors, 0) AS visitors,
    coalesce(active.users, 0) AS users
FROM active FULL OUTER JOIN raw_crm_app.workspaces AS app USING (workspace_id)
