/*
description: >
  Every connected ad platform's daily performance per ad and day, in one shape (Fivetran ad_reporting's column
  names plus workspace, connection and currency): the UNION ALL BY NAME of each platform's staging model
  stg_<platform>__ad_report. Amounts stay in each account's currency: sum spend across rows only per currency.
materialized: table
contract: {ad_report: ad}
tests:
  - unique: [platform, connection_id, account_id, ad_id, date_day]
  - not_null: [platform, connection_id, account_id, ad_id, date_day, workspace_id, clicks, impressions, spend]
  - accepted_values: {column: platform, values: [facebook_ads, google_ads, linkedin_ads]}
*/
SELECT * FROM staging.stg_facebook_ads__ad_report
UNION ALL BY NAME
SELECT * FROM staging.stg_google_ads__ad_report
UNION ALL BY NAME
SELECT * FROM staging.stg_linkedin_ads__ad_report
