/*
description: >
  LinkedIn Ads daily performance per campaign group and day, in the cross-platform report's shape
  (pipelines/ad_reporting.py). LinkedIn's campaign groups are campaigns, its campaigns ad groups and its
  creatives ads (Fivetran's mapping). Conversions are LinkedIn's externalWebsiteConversions: each conversion
  counts under the attribution windows its conversion rule declares (LinkedIn's default: 30 days post-click, 7
  days post-view). The ad group report (LinkedIn's CAMPAIGN pivot) rolled up.
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
  currency: ISO 4217 currency of the ad account.
  clicks: Chargeable clicks.
  impressions: Impressions (sends, for message ads).
  spend: Cost in the account's currency (costInLocalCurrency), major units.
  conversions: External website conversions, under each conversion rule's own attribution windows (by default 30 days after a click and 7 after a view).
  conversions_value: Value of those conversions in the account's currency.
tests:
  - unique: [date_day, connection_id, account_id, campaign_id]
  - not_null: [date_day, connection_id, account_id, campaign_id, platform, workspace_id, clicks, impressions, spend]
*/
SELECT
    date_day,
    platform,
    workspace_id,
    connection_id,
    account_id,
    account_name,
    campaign_id,
    campaign_name,
    currency,
    CAST(sum(clicks) AS BIGINT) AS clicks,
    CAST(sum(impressions) AS BIGINT) AS impressions,
    CAST(sum(spend) AS DECIMAL(38, 6)) AS spend,
    sum(conversions) AS conversions,
    sum(conversions_value) AS conversions_value
FROM staging.stg_linkedin_ads__ad_group_report
GROUP BY ALL
