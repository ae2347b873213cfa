/*
description: Events and visitors per day by device class, browser and operating system, with the bot share.
materialized: incremental
incremental_key: event_date
lookback_days: 0
columns:
  event_date: UTC day.
  device_class: desktop, mobile, tablet or bot.
  browser_family: Browser family.
  os_family: Operating system family.
  events: Events.
  visitors: Distinct visitors with analytics consent.
  bot_events: Events from bots.
  bot_share: bot_events / events.
tests:
  - unique: [event_date, device_class, browser_family, os_family]
  - not_null: [event_date, events, bot_share]
  - accepted_values: {column: device_class, values: [desktop, mobile, tablet, bot]}
*/
SELECT
    event_date,
    device_class,
    browser_family,
    os_family,
    count(*) AS events,
    count(DISTINCT visitor_key) AS visitors,
    count_if(coalesce(is_bot, false))::BIGINT AS bot_events,
    count_if(coalesce(is_bot, false)) / count(*) AS bot_share
FROM staging.stg_events
WHERE occurred_at >= CAST(getvariable('gtg_since') AS TIMESTAMPTZ)
GROUP BY ALL
