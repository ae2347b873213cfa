/*
description: >
  LinkedIn Ads: one row per creative (an ad in the shared ad-report shape) and day, from the daily analytics by
  creative (pivot CREATIVE), a request of its own: its figures for a day still running may differ from the
  campaign pivot's. Conversions as in stg_linkedin_ads__ad_group_report (externalWebsiteConversions).
materialized: view
contract: {ad_report: ad}
tests:
  - unique: [date_day, connection_id, account_id, ad_id]
  - not_null: [date_day, connection_id, account_id, ad_id, platform, workspace_id, clicks, impressions, spend]
*/
SELECT
    f.date_day, 'linkedin_ads' AS platform, f.workspace_id, f.connection_id,
    CAST(f.account_id AS VARCHAR) AS account_id, a.name AS account_name,
    CAST(c.campaign_group_id AS VARCHAR) AS campaign_id, g.name AS campaign_name,
    CAST(f.campaign_id AS VARCHAR) AS ad_group_id, c.name AS ad_group_name,
    CAST(f.creative_id AS VARCHAR) AS ad_id, k.name AS ad_name, a.currency,
    f.clicks, f.impressions, CAST(f.cost_in_local_currency AS DECIMAL(38, 6)) AS spend,
    CAST(f.external_website_conversions AS DOUBLE) AS conversions,
    CAST(f.conversion_value_in_local_currency AS DOUBLE) AS conversions_value
FROM raw_linkedin_ads.linkedin_ads_creative_analytics AS f
LEFT JOIN raw_linkedin_ads.linkedin_ads_accounts AS a
    ON a.connection_id = f.connection_id AND a.account_id = f.account_id
LEFT JOIN raw_linkedin_ads.linkedin_ads_creatives AS k
    ON k.connection_id = f.connection_id AND k.creative_id = f.creative_id
LEFT JOIN raw_linkedin_ads.linkedin_ads_campaigns AS c
    ON c.connection_id = f.connection_id AND c.campaign_id = f.campaign_id
LEFT JOIN raw_linkedin_ads.linkedin_ads_campaign_groups AS g
    ON g.connection_id = c.connection_id AND g.campaign_group_id = c.campaign_group_id
