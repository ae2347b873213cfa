/*
description: >
  Meta ads: one row per campaign and day (the ad account's time zone) in the shared ad-report shape, summed
  from stg_facebook_ads__ad_report (same attribution: purchases under the account's default setting, 7-day
  click or 1-day view).
materialized: view
columns:
  date_day: Day in the ad account's time zone.
  platform: facebook_ads.
  workspace_id: The workspace.
  connection_id: The connection the account was synced through.
  account_id: Meta ad account id (without act_).
  account_name: The ad account's name.
  campaign_id: Campaign id.
  campaign_name: Campaign name.
  currency: ISO 4217 currency of the account.
  clicks: Clicks (all).
  impressions: Impressions.
  spend: Amount spent, account currency, major units (JPY whole).
  conversions: Purchases under the default attribution setting.
  conversions_value: Purchase value under the default attribution setting, account currency.
tests:
  - unique: [connection_id, campaign_id, date_day]
  - not_null: [date_day, platform, workspace_id, connection_id, account_id, currency, clicks, impressions, spend]
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
    CAST(sum(conversions) AS DOUBLE) AS conversions,
    CAST(sum(conversions_value) AS DOUBLE) AS conversions_value
FROM staging.stg_facebook_ads__ad_report
GROUP BY ALL
