/*
description: >
  Every connected ad platform's daily performance per campaign and day, in one shape (Fivetran ad_reporting's
  column names plus workspace, connection and currency): the UNION ALL BY NAME of each platform's staging
  model stg_<platform>__campaign_report. Amounts stay in each account's currency: sum spend across rows only
  per currency.
materialized: table
columns:
  date_day: The day, in the ad account's reporting time zone.
  platform: The ad platform (facebook_ads, google_ads or linkedin_ads).
  workspace_id: The GTG CRM workspace that connected the ad account.
  connection_id: The connection the figures were synced through.
  account_id: The platform's ad account id (Google Ads customer id).
  account_name: The ad account's name.
  campaign_id: Campaign id (a LinkedIn campaign group).
  campaign_name: Campaign name.
  currency: ISO 4217 currency of the ad account; every amount of the row is in it.
  clicks: Clicks.
  impressions: Impressions.
  spend: Cost in the account's currency, major units.
  conversions: Conversions under each platform's default attribution setting (see its staging model).
  conversions_value: Value of those conversions in the account's currency.
tests:
  - unique: [platform, connection_id, account_id, campaign_id, date_day]
  - not_null: [platform, connection_id, account_id, campaign_id, date_day, workspace_id, clicks, impressions, spend]
  - accepted_values: {column: platform, values: [facebook_ads, google_ads, linkedin_ads]}
*/
SELECT * FROM staging.stg_facebook_ads__campaign_report
UNION ALL BY NAME
SELECT * FROM staging.stg_google_ads__campaign_report
UNION ALL BY NAME
SELECT * FROM staging.stg_linkedin_ads__campaign_report
