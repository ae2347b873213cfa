/*
description: >
  LinkedIn Ads daily performance per campaign and day, in the cross-platform report's shape
  (pipelines/ad_reporting.py). LinkedIn's campaign groups are campaigns, its campaigns ad groups and its
  creatives ads (Fivetran's mapping). Conversions are LinkedIn's externalWebsiteConversions: each conversion
  counts under the attribution windows its conversion rule declares (LinkedIn's default: 30 days post-click, 7
  days post-view). From the daily analytics by campaign (pivot CAMPAIGN).
materialized: view
columns:
  date_day: The day, as LinkedIn reports it for the ad account.
  platform: Always linkedin_ads.
  workspace_id: The GTG CRM workspace that connected the account.
  connection_id: The connection the figures were synced through.
  account_id: LinkedIn ad account id.
  account_name: The ad account's name.
  campaign_id: LinkedIn campaign group id (a campaign in the unified report).
  campaign_name: The campaign group's name.
  ad_group_id: LinkedIn campaign id (an ad group in the unified report).
  ad_group_name: The campaign's name.
  currency: ISO 4217 currency of the ad account.
  clicks: Chargeable clicks.
  impressions: Impressions (sends, for message ads).
  spend: Cost in the account's currency (costInLocalCurrency), major units.
  conversions: External website conversions, under each conversion rule's own attribution windows (by default 30 days after a click and 7 after a view).
  conversions_value: Value of those conversions in the account's currency.
tests:
  - unique: [date_day, connection_id, account_id, ad_group_id]
  - not_null: [date_day, connection_id, account_id, ad_group_id, platform, workspace_id, clicks, impressions, spend]
*/
SELECT
    f.date_day,
    'linkedin_ads' AS platform,
    f.workspace_id,
    f.connection_id,
    CAST(f.account_id AS VARCHAR) AS account_id,
    a.name AS account_name,
    CAST(c.campaign_group_id AS VARCHAR) AS campaign_id,
    g.name AS campaign_name,
    CAST(f.campaign_id AS VARCHAR) AS ad_group_id,
    c.name AS ad_group_name,
    a.currency,
    CAST(sum(f.clicks) AS BIGINT) AS clicks,
    CAST(sum(f.impressions) AS BIGINT) AS impressions,
    CAST(sum(f.cost_in_local_currency) AS DECIMAL(38, 6)) AS spend,
    CAST(sum(f.external_website_conversions) AS DOUBLE) AS conversions,
    CAST(sum(f.conversion_value_in_local_currency) AS DOUBLE) AS conversions_value
FROM raw_linkedin_ads.linkedin_ads_campaign_analytics f
LEFT JOIN raw_linkedin_ads.linkedin_ads_accounts a ON a.connection_id = f.connection_id AND a.account_id = f.account_id
LEFT JOIN raw_linkedin_ads.linkedin_ads_campaigns c ON c.connection_id = f.connection_id AND c.campaign_id = f.campaign_id
LEFT JOIN raw_linkedin_ads.linkedin_ads_campaign_groups g ON g.connection_id = c.connection_id AND g.campaign_group_id = c.campaign_group_id
GROUP BY ALL
