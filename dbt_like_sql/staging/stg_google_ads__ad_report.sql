/*
description: >
  Google Ads ad performance per day, in the shared ad-report shape (pipelines/ad_reporting.py, Fivetran ad_reporting's
  column names), from raw_google_ads.google_ads_ad_daily. One row per ad and day of the account's own time zone (the
  source reads each account up to its yesterday). Spend is cost_micros / 1,000,000 in the account's currency
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
  campaign_id: The campaign id.
  campaign_name: The campaign's name.
  ad_group_id: The ad group id.
  ad_group_name: The ad group's name.
  ad_id: The ad id.
  ad_name: The ad's name (null for the many ads Google Ads leaves unnamed).
  currency: The account's currency (ISO 4217).
  clicks: Clicks.
  impressions: Impressions.
  spend: Cost in the account's currency (major units).
  conversions: Conversions (Google Ads "Conversions").
  conversions_value: Value of those conversions, in the account's currency.
tests:
  - unique: [date_day, connection_id, account_id, campaign_id, ad_group_id, ad_id]
  - not_null: [date_day, platform, workspace_id, connection_id, account_id, currency, clicks, impressions, spend]
*/
SELECT
    d.date AS date_day,
    'google_ads' AS platform,
    d.workspace_id,
    d.connection_id,
    d.customer_id AS account_id,
    c.descriptive_name AS account_name,
    CAST(d.campaign_id AS VARCHAR) AS campaign_id,
    cp.name AS campaign_name,
    CAST(d.ad_group_id AS VARCHAR) AS ad_group_id,
    ag.name AS ad_group_name,
    CAST(d.ad_id AS VARCHAR) AS ad_id,
    a.name AS ad_name,
    c.currency_code AS currency,
    CAST(sum(d.clicks) AS BIGINT) AS clicks,
    CAST(sum(d.impressions) AS BIGINT) AS impressions,
    CAST(sum(d.cost_micros) AS DECIMAL(38, 0)) * CAST(0.000001 AS DECIMAL(38, 6)) AS spend,
    sum(d.conversions) AS conversions,
    sum(d.conversions_value) AS conversions_value
FROM raw_google_ads.google_ads_ad_daily AS d
LEFT JOIN raw_google_ads.google_ads_customers AS c
    ON c.connection_id = d.connection_id AND c.customer_id = d.customer_id
LEFT JOIN raw_google_ads.google_ads_campaigns AS cp
    ON cp.connection_id = d.connection_id AND cp.campaign_id = d.campaign_id
LEFT JOIN raw_google_ads.google_ads_ad_groups AS ag
    ON ag.connection_id = d.connection_id AND ag.ad_group_id = d.ad_group_id
LEFT JOIN raw_google_ads.google_ads_ads AS a
    ON a.connection_id = d.connection_id AND a.ad_id = d.ad_id AND a.ad_group_id = d.ad_group_id
GROUP BY ALL
