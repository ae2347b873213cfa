/*
description: >
  One row per visitor and day they were active: the small table that daily, weekly and monthly active
  counts are computed from (distinct counts over periods need the visitors, not just daily totals).
materialized: incremental
incremental_key: event_date
lookback_days: 0
subject_columns: [visitor_key, user_key]
columns:
  event_date: UTC day.
  workspace_id: The workspace.
  visitor_key: Pseudonymous visitor (blind index); removed by erasure.
  user_key: Pseudonymous signed-in user (blind index), if the visitor signed in that day; removed by erasure.
  is_bot: The visitor's events came from a bot.
  events: Events of the visitor that day.
tests:
  - unique: [event_date, workspace_id, visitor_key]
  - not_null: [event_date, workspace_id, visitor_key, events]
*/
SELECT
    event_date,
    workspace_id,
    visitor_key,
    max(user_key) AS user_key,
    bool_or(coalesce(is_bot, false)) AS is_bot,
    count(*) AS events
FROM staging.stg_events
WHERE visitor_key IS NOT NULL
  AND occurred_at >= CAST(getvariable('gtg_since') AS TIMESTAMPTZ)  -- = event_date >= since, prunes row groups
GROUP BY event_date, workspace_id, visitor_key
