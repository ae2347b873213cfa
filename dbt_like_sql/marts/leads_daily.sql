/*
description: >
  Leads collected per lead form and day (the ad account's time zone). Counts only: no name, address, phone
  or answer of a lead reaches this table.
materialized: table
columns:
  date_day: Day in the ad account's time zone the leads were submitted.
  platform: The ad platform (facebook_ads).
  workspace_id: The workspace.
  connection_id: The connection the account was synced through.
  account_id: Ad account id.
  form_id: Lead form id.
  form_name: Lead form name.
  leads: Leads submitted.
tests:
  - unique: [platform, connection_id, form_id, date_day]
  - not_null: [date_day, platform, workspace_id, connection_id, account_id, form_id, leads]
*/
SELECT
    CAST(timezone(a.timezone_name, l.created_time) AS DATE) AS date_day,
    'facebook_ads' AS platform,
    l.workspace_id,
    l.connection_id,
    l.account_id,
    l.form_id,
    f.name AS form_name,
    count(*) AS leads
FROM raw_facebook_ads.leads AS l
JOIN raw_facebook_ads.ad_accounts AS a ON a.connection_id = l.connection_id AND a.account_id = l.account_id
LEFT JOIN raw_facebook_ads.lead_forms AS f ON f.connection_id = l.connection_id AND f.form_id = l.form_id
GROUP BY ALL
