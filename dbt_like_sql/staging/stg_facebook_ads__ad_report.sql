/*
description: >
  Meta ads: one row per ad and day (the ad account's time zone) in the shared ad-report shape, from the
  ad-level insights the coarser grains are summed from. Conversions are purchases
  (`offsite_conversion.fb_pixel_purchase`) under the account's default attribution setting — Meta's reported
  `value`, 7-day click or 1-day view — exactly as Ads Manager shows them; the other windows stay in
  raw_facebook_ads.ad_insight_actions. Names are the objects' current names, from stg_facebook_ads__ads.
materialized: view
contract: {ad_report: ad}
tests:
  - unique: [connection_id, ad_id, date_day]
  - not_null: [date_day, platform, workspace_id, connection_id, account_id, ad_id, currency, clicks, impressions, spend]
*/
WITH conversions AS (
    SELECT
        connection_id,
        insight_id,
        sum(value) FILTER (WHERE kind = 'action') AS conversions,
        sum(value) FILTER (WHERE kind = 'action_value') AS conversions_value
    FROM raw_facebook_ads.ad_insight_actions
    WHERE attribution_window = 'default' AND action_type = 'offsite_conversion.fb_pixel_purchase'
    GROUP BY ALL
)
SELECT
    i.date_day,
    'facebook_ads' AS platform,
    i.workspace_id,
    i.connection_id,
    i.account_id,
    d.account_name,
    i.campaign_id,
    d.campaign_name,
    i.adset_id AS ad_group_id,
    d.ad_group_name,
    i.ad_id,
    d.ad_name,
    i.currency,
    CAST(coalesce(i.clicks, 0) AS BIGINT) AS clicks,
    CAST(coalesce(i.impressions, 0) AS BIGINT) AS impressions,
    CAST(coalesce(i.spend, 0) AS DECIMAL(38, 6)) AS spend,
    CAST(coalesce(v.conversions, 0) AS DOUBLE) AS conversions,
    CAST(coalesce(v.conversions_value, 0) AS DOUBLE) AS conversions_value
FROM raw_facebook_ads.ad_insights AS i
LEFT JOIN staging.stg_facebook_ads__ads AS d ON d.connection_id = i.connection_id AND d.ad_id = i.ad_id
LEFT JOIN conversions AS v ON v.connection_id = i.connection_id AND v.insight_id = i.insight_id
