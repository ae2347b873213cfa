/*
description: >
  Google Ads: one row per account and day, stg_google_ads__campaign_report summed (a campaign's figures include
  what no ad carries, so accounts are the sum of their campaigns).
materialized: view
contract: {ad_report: account}
tests:
  - unique: [date_day, connection_id, account_id]
  - not_null: [date_day, platform, workspace_id, connection_id, account_id, currency, clicks, impressions, spend]
*/
SELECT
    date_day, platform, workspace_id, connection_id, account_id, account_name, currency,
    CAST(sum(clicks) AS BIGINT) AS clicks, CAST(sum(impressions) AS BIGINT) AS impressions, sum(spend) AS spend,
    sum(conversions) AS conversions, sum(conversions_value) AS conversions_value
FROM staging.stg_google_ads__campaign_report
GROUP BY ALL
