/*
description: >
  Google Ads: one row per ad group and day, from raw_google_ads.google_ads_ad_group_daily; figures as in
  stg_google_ads__campaign_report (Google Ads' "Conversions", on the day of the click).
materialized: view
contract: {ad_report: ad_group}
tests:
  - unique: [date_day, connection_id, account_id, campaign_id, ad_group_id]
  - not_null: [date_day, platform, workspace_id, connection_id, account_id, currency, clicks, impressions, spend]
*/
SELECT
    d.date AS date_day, 'google_ads' AS platform, d.workspace_id, d.connection_id, d.customer_id AS account_id,
    c.descriptive_name AS account_name, CAST(d.campaign_id AS VARCHAR) AS campaign_id, cp.name AS campaign_name,
    CAST(d.ad_group_id AS VARCHAR) AS ad_group_id, ag.name AS ad_group_name, c.currency_code AS currency,
    d.clicks, d.impressions, CAST(d.cost_micros AS DECIMAL(38, 0)) * CAST(0.000001 AS DECIMAL(38, 6)) AS spend,
    d.conversions, d.conversions_value
FROM raw_google_ads.google_ads_ad_group_daily AS d
LEFT JOIN raw_google_ads.google_ads_customers AS c
    ON c.connection_id = d.connection_id AND c.customer_id = d.customer_id
LEFT JOIN raw_google_ads.google_ads_campaigns AS cp
    ON cp.connection_id = d.connection_id AND cp.campaign_id = d.campaign_id
LEFT JOIN raw_google_ads.google_ads_ad_groups AS ag
    ON ag.connection_id = d.connection_id AND ag.ad_group_id = d.ad_group_id
