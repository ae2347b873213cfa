/*
description: >
  Feature usage per day: clicks by element clicked, and custom events by type (report_exported,
  deal_created, ...). Bots left out.
materialized: incremental
incremental_key: event_date
lookback_days: 0
columns:
  event_date: UTC day.
  feature: "\"click: <element>\" or the custom event type."
  events: Events.
  visitors: Distinct visitors with analytics consent.
  workspaces: Distinct workspaces.
tests:
  - unique: [event_date, feature]
  - not_null: [event_date, feature, events]
*/
SELECT
    event_date,
    CASE WHEN event_type = 'click' THEN 'click: ' || coalesce(clicked_element, '(unknown)') ELSE event_type END AS feature,
    count(*) AS events,
    count(DISTINCT visitor_key) AS visitors,
    count(DISTINCT workspace_id) AS workspaces
FROM staging.stg_events
WHERE event_type NOT IN ('page_view', 'session_start', 'session_end') AND NOT coalesce(is_bot, false)
  AND occurred_at >= CAST(getvariable('gtg_since') AS TIMESTAMPTZ)
GROUP BY ALL
