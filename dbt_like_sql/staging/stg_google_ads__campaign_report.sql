/*
description: >
  Google Ads: one row per campaign and day of the account's own time zone (the source reads each account up to
  its yesterday), from raw_google_ads.google_ads_campaign_daily. Google Ads reports each level as its own
  resource, and a campaign's figures include what no ad carries, so the ad group and ad reports read theirs.
  Spend is cost_micros / 1,000,000 (yen stay whole). Conversions and their value are Google Ads' "Conversions"
  columns: the conversion actions included in Conversions, each under its own attribution model (data-driven
  by default), counted on the day of the click; the conversion window (14 days by default, up to 90) is
  re-read on every sync.
materialized: view
contract: {ad_report: campaign}
tests:
  - unique: [date_day, connection_id, account_id, campaign_id]
  - not_null: [date_day, platform, workspace_id, connection_id, account_id, currency, clicks, impressions, spend]
*/
SELECT
    d.date AS date_day, 'google_ads' AS platform, d.workspace_id, d.connection_id, d.customer_id AS account_id,
    c.descriptive_name AS account_name, CAST(d.campaign_id AS VARCHAR) AS campaign_id, cp.name AS campaign_name,
    c.currency_code AS currency,
    d.clicks, d.impressions, CAST(d.cost_micros AS DECIMAL(38, 0)) * CAST(0.000001 AS DECIMAL(38, 6)) AS spend,
    d.conversions, d.conversions_value
FROM raw_google_ads.google_ads_campaign_daily AS d
LEFT JOIN raw_google_ads.google_ads_customers AS c
    ON c.connection_id = d.connection_id AND c.customer_id = d.customer_id
LEFT JOIN raw_google_ads.google_ads_campaigns AS cp
    ON cp.connection_id = d.connection_id AND cp.campaign_id = d.campaign_id
