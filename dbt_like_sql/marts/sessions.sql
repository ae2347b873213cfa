/*
description: >
  One row per visitor session. A session ends after 30 minutes without activity and lasts 24 hours at
  most (a longer run of activity starts a new session at each 24 hours), as in Snowplow's and
  RudderStack's web models. Only visitors with analytics consent (a visitor key) are sessionised.
  Incremental and load-aware: the visitors with events loaded since the last build, of the latest day built
  or of any earlier day those loads reached (late events), have their sessions from the day before that day
  recomputed (a session can run past midnight).
materialized: incremental
incremental_key: session_date
lookback_days: 0
partition_by: [workspace_id, visitor_key]
subject_columns: [visitor_key]
columns:
  session_id: Pseudonymous session id (hash of workspace, visitor key and start).
  workspace_id: The workspace.
  visitor_key: Pseudonymous visitor (blind index); removed by erasure.
  session_date: UTC day the session started.
  started_at: First event of the session.
  ended_at: Last event of the session.
  duration_s: Seconds from the first to the last event.
  events: Events in the session.
  page_views: Page views in the session.
  clicks: Clicks in the session.
  entry_page: Path of the first page viewed.
  exit_page: Path of the last page viewed.
  is_bounce: One page view and no other interaction.
  device_class: Device class of the session's first event.
  browser_family: Browser family of the session's first event.
  os_family: Operating system family of the session's first event.
  is_bot: Any event of the session came from a bot.
tests:
  - unique: session_id
  - not_null: [session_id, workspace_id, visitor_key, session_date, started_at, ended_at, duration_s]
  - accepted_values: {column: device_class, values: [desktop, mobile, tablet, bot]}
  - relationships: {column: workspace_id, to: analytics.workspaces, field: workspace_id}
  - row_count: {min: 1}
*/
WITH changed AS (  -- visitors with events loaded since the last build (none in a full build: everyone is new)
    SELECT workspace_id, visitor_key
    FROM staging.stg_events
    WHERE getvariable('gtg_loaded_after') <> '' AND load_id > getvariable('gtg_loaded_after')
      AND visitor_key IS NOT NULL AND occurred_at >= CAST(getvariable('gtg_since') AS TIMESTAMPTZ)
),
events AS (  -- theirs from two days before: the day before's sessions, and where a run going on at its midnight began
    SELECT workspace_id, visitor_key, occurred_at, event_type, page_path, device_class, browser_family,
           os_family, is_bot
    FROM staging.stg_events
    WHERE visitor_key IS NOT NULL
      AND occurred_at >= CAST(getvariable('gtg_since') - INTERVAL 2 DAY AS TIMESTAMPTZ)
      AND (getvariable('gtg_loaded_after') = ''
           OR (workspace_id, visitor_key) IN (SELECT (workspace_id, visitor_key) FROM changed))
),
gaps AS (
    SELECT *,
           CASE WHEN occurred_at - lag(occurred_at) OVER visitor <= INTERVAL 30 MINUTE THEN 0 ELSE 1 END AS starts
    FROM events
    WINDOW visitor AS (PARTITION BY workspace_id, visitor_key ORDER BY occurred_at)
),
runs AS (
    -- One ordered pass: the run number, and when the run started (the latest start so far). Events at the same
    -- instant count together (the frame takes in peers): which of them `gaps` saw first, and so marked as the
    -- run's start, is arbitrary, and must not split them.
    SELECT *,
           sum(starts) OVER visitor AS run_no,
           max(CASE WHEN starts = 1 THEN occurred_at END) OVER visitor AS run_started
    FROM gaps
    WINDOW visitor AS (PARTITION BY workspace_id, visitor_key ORDER BY occurred_at)
),
capped AS (
    SELECT *, floor(epoch(occurred_at - run_started) / 86400)::BIGINT AS day_no FROM runs
)
SELECT
    md5(concat_ws(':', workspace_id, hex(visitor_key), epoch_us(min(occurred_at)))) AS session_id,
    workspace_id,
    visitor_key,
    CAST(min(occurred_at) AS DATE) AS session_date,
    min(occurred_at) AS started_at,
    max(occurred_at) AS ended_at,
    epoch(max(occurred_at) - min(occurred_at)) AS duration_s,
    count(*) AS events,
    count_if(event_type = 'page_view')::BIGINT AS page_views,
    count_if(event_type = 'click')::BIGINT AS clicks,
    arg_min(page_path, occurred_at) FILTER (WHERE event_type = 'page_view') AS entry_page,
    arg_max(page_path, occurred_at) FILTER (WHERE event_type = 'page_view') AS exit_page,
    count_if(event_type = 'page_view') = 1
        AND count_if(event_type NOT IN ('page_view', 'session_start', 'session_end')) = 0 AS is_bounce,
    arg_min(device_class, occurred_at) AS device_class,
    arg_min(browser_family, occurred_at) AS browser_family,
    arg_min(os_family, occurred_at) AS os_family,
    bool_or(is_bot) AS is_bot
FROM capped
GROUP BY workspace_id, visitor_key, run_no, day_no
-- Only sessions seen whole: from the day before the window on.
HAVING min(occurred_at) >= CAST(getvariable('gtg_since') - INTERVAL 1 DAY AS TIMESTAMPTZ)
