/*
description: Page views and distinct visitors per day and page path (bots left out).
materialized: incremental
incremental_key: event_date
lookback_days: 0
columns:
  event_date: UTC day.
  page_path: Path of the page.
  page_views: Page views.
  visitors: Distinct visitors with analytics consent.
  workspaces: Distinct workspaces.
tests:
  - unique: [event_date, page_path]
  - not_null: [event_date, page_views]
*/
SELECT
    event_date,
    page_path,
    count(*) AS page_views,
    count(DISTINCT visitor_key) AS visitors,
    count(DISTINCT workspace_id) AS workspaces
FROM staging.stg_events
WHERE event_type = 'page_view' AND NOT coalesce(is_bot, false) AND occurred_at >= CAST(getvariable('gtg_since') AS TIMESTAMPTZ)
GROUP BY event_date, page_path
