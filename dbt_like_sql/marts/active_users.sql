/*
description: >
  Active users, visitors and workspaces per calendar day, ISO week (starting Monday) and month. A user is
  a signed-in person (user key), a visitor anyone with analytics consent (visitor key); bots are left out.
  Computed from visitor_days, so a week or a month costs a scan of visitor-days, not of events.
  Incremental: the days from the latest one built, and that day's week and month, are recomputed.
materialized: incremental
incremental_key: period_start
lookback_days: 0
partition_by: [grain]
columns:
  grain: day, week or month.
  period_start: First day of the period.
  active_users: Distinct signed-in users with an event in the period.
  active_visitors: Distinct visitors (signed in or not) with an event in the period.
  active_workspaces: Distinct workspaces with a visitor in the period.
tests:
  - unique: [grain, period_start]
  - not_null: [grain, period_start, active_users, active_visitors, active_workspaces]
  - accepted_values: {column: grain, values: [day, week, month]}
*/
-- Each grain aggregated on its own (three small aggregations, run side by side; one over their union costs
-- twice as much), from the start of the period holding the window's first day: whole periods only.
SELECT 'day' AS grain, event_date AS period_start, count(DISTINCT user_key) AS active_users,
       count(DISTINCT visitor_key) AS active_visitors, count(DISTINCT workspace_id) AS active_workspaces
FROM analytics.visitor_days
WHERE NOT is_bot AND event_date >= getvariable('gtg_since')
GROUP BY event_date
UNION ALL
SELECT 'week', CAST(date_trunc('week', event_date) AS DATE), count(DISTINCT user_key), count(DISTINCT visitor_key),
       count(DISTINCT workspace_id)
FROM analytics.visitor_days
WHERE NOT is_bot AND event_date >= date_trunc('week', getvariable('gtg_since'))
GROUP BY 2
UNION ALL
SELECT 'month', CAST(date_trunc('month', event_date) AS DATE), count(DISTINCT user_key), count(DISTINCT visitor_key),
       count(DISTINCT workspace_id)
FROM analytics.visitor_days
WHERE NOT is_bot AND event_date >= date_trunc('month', getvariable('gtg_since'))
GROUP BY 2
