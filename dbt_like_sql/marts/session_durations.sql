/*
description: >
  How long sessions last, per day, in buckets (bot sessions left out). Incremental with the same lookback as
  sessions: a late event can lengthen a session of the day before the latest.
materialized: incremental
incremental_key: session_date
lookback_days: 1
columns:
  session_date: UTC day the sessions started.
  bucket: 'Duration bucket: 0-10s, 10-30s, 30-60s, 1-3m, 3-10m, 10-30m, 30-60m or 1h+.'
  bucket_order: Sort order of the buckets.
  sessions: Sessions in the bucket.
  share: Share of the day's sessions.
tests:
  - unique: [session_date, bucket]
  - not_null: [session_date, bucket, sessions, share]
  - accepted_values: {column: bucket, values: ["0-10s", "10-30s", "30-60s", "1-3m", "3-10m", "10-30m", "30-60m", "1h+"]}
*/
WITH bucketed AS (
    SELECT session_date,
           CASE WHEN duration_s < 10 THEN 1 WHEN duration_s < 30 THEN 2 WHEN duration_s < 60 THEN 3
                WHEN duration_s < 180 THEN 4 WHEN duration_s < 600 THEN 5 WHEN duration_s < 1800 THEN 6
                WHEN duration_s < 3600 THEN 7 ELSE 8 END AS bucket_order
    FROM analytics.sessions
    WHERE NOT is_bot AND session_date >= getvariable('gtg_since')
)
SELECT
    session_date,
    ['0-10s', '10-30s', '30-60s', '1-3m', '3-10m', '10-30m', '30-60m', '1h+'][bucket_order] AS bucket,
    bucket_order,
    count(*) AS sessions,
    count(*) / sum(count(*)) OVER (PARTITION BY session_date) AS share
FROM bucketed
GROUP BY session_date, bucket_order
