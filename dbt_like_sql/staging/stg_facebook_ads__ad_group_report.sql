/*
description: >
  Meta ads: one row per ad set (ad group) and day, stg_facebook_ads__ad_report summed (its conversions: purchases under
  the account's default attribution setting).
materialized: view
contract: {ad_report: ad_group}
tests:
  - unique: [connection_id, ad_group_id, date_day]
  - not_null: [date_day, platform, workspace_id, connection_id, account_id, currency, clicks, impressions, spend]
*/
SELECT
    date_day, platform, workspace_id, connection_id, account_id, account_name, campaign_id, campaign_name,
    ad_group_id, ad_group_name, currency,
    CAST(sum(clicks) AS BIGINT) AS clicks, CAST(sum(impressions) AS BIGINT) AS impressions, sum(spend) AS spend,
    sum(conversions) AS conversions, sum(conversions_value) AS conversions_value
FROM staging.stg_facebook_ads__ad_report
GROUP BY ALL
