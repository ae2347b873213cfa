/*
description: >
  Google Ads account totals per day, in the shared ad-report shape (pipelines/ad_reporting.py, Fivetran
  ad_reporting's column names): the campaign report summed per account. One row per account and day of the
  account's own time zone (the source reads each account up to its yesterday). Spend is cost_micros / 1,000,000 in the account's currency
  (yen stay whole). Conversions and their value are Google Ads' "Conversions" columns: the conversion actions
  included in Conversions, each under its own attribution model (data-driven by default), counted on the day
  of the click; the conversion window (14 days by default, up to 90) is re-read on
  every sync.
materialized: view
columns:
  date_day: The day, in the ad account's time zone.
  platform: Always google_ads.
  workspace_id: The GTG CRM workspace that connected the account.
  connection_id: The connection the row was synced through.
  account_id: The Google Ads customer id (10 digits, no dashes).
  account_name: The account's descriptive name.
  currency: The account's currency (ISO 4217).
  clicks: Clicks.
  impressions: Impressions.
  spend: Cost in the account's currency (major units).
  conversions: Conversions (Google Ads "Conversions").
  conversions_value: Value of those conversions, in the account's currency.
tests:
  - unique: [date_day, connection_id, account_id]
  - not_null: [date_day, platform, workspace_id, connection_id, account_id, currency, clicks, impressions, spend]
*/
SELECT
    date_day,
    platform,
    workspace_id,
    connection_id,
    account_id,
    account_name,
    currency,
    CAST(sum(clicks) AS BIGINT) AS clicks,
    CAST(sum(impressions) AS BIGINT) AS impressions,
    sum(spend) AS spend,
    sum(conversions) AS conversions,
    sum(conversions_value) AS conversions_value
FROM staging.stg_google_ads__campaign_report
GROUP BY ALL
