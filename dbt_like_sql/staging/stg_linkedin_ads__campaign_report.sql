/*
description: >
  LinkedIn Ads: one row per campaign group (a campaign in the shared ad-report shape) and day,
  stg_linkedin_ads__ad_group_report (LinkedIn's CAMPAIGN pivot) summed.
materialized: view
contract: {ad_report: campaign}
tests:
  - unique: [date_day, connection_id, account_id, campaign_id]
  - not_null: [date_day, connection_id, account_id, campaign_id, platform, workspace_id, clicks, impressions, spend]
*/
SELECT
    date_day, platform, workspace_id, connection_id, account_id, account_name, campaign_id, campaign_name, currency,
    CAST(sum(clicks) AS BIGINT) AS clicks, CAST(sum(impressions) AS BIGINT) AS impressions, sum(spend) AS spend,
    sum(conversions) AS conversions, sum(conversions_value) AS conversions_value
FROM staging.stg_linkedin_ads__ad_group_report
GROUP BY ALL
