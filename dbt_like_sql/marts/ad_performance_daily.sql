/*
description: >
  Ad performance per day (the ad account's time zone), platform, account, campaign, ad set and ad, with
  Fivetran ad_reporting's column names: impressions, clicks, spend in the account currency, conversions and
  conversion value under the platform's default attribution setting (Meta: 7-day click or 1-day view
  purchases), and the leads the ad's forms collected that day. Meta today; each ad platform joins with its
  staging ad report. Counts and amounts only: no lead's data reaches this table.
materialized: table
contract: {ad_report: ad}
columns:  # after the ad report's
  leads: Leads submitted through the ad's lead forms that day (account time zone); a day with leads but no
    delivery Meta reports has its row too, with zero delivery.
tests:
  - unique: [platform, connection_id, ad_id, date_day]
  - not_null: [date_day, platform, workspace_id, connection_id, account_id, ad_id, currency, clicks, impressions, spend, leads]
*/
WITH lead_days AS (
    SELECT
        l.workspace_id,
        l.connection_id,
        l.account_id,
        a.currency,
        l.ad_id,
        CAST(timezone(a.timezone_name, l.created_time) AS DATE) AS date_day,
        count(*) AS leads
    FROM raw_facebook_ads.leads AS l
    JOIN raw_facebook_ads.ad_accounts AS a ON a.connection_id = l.connection_id AND a.account_id = l.account_id
    GROUP BY ALL
),
undelivered AS (  -- leads on an ad and day Meta reports no delivery for: kept, never dropped by the join
    SELECT
        d.date_day,
        'facebook_ads' AS platform,
        d.workspace_id,
        d.connection_id,
        d.account_id,
        ad.account_name,
        ad.campaign_id,
        ad.campaign_name,
        ad.ad_group_id,
        ad.ad_group_name,
        d.ad_id,
        ad.ad_name,
        d.currency,
        CAST(0 AS BIGINT) AS clicks,
        CAST(0 AS BIGINT) AS impressions,
        CAST(0 AS DECIMAL(38, 6)) AS spend,
        CAST(0 AS DOUBLE) AS conversions,
        CAST(0 AS DOUBLE) AS conversions_value,
        CAST(d.leads AS BIGINT) AS leads
    FROM lead_days AS d
    LEFT JOIN staging.stg_facebook_ads__ads AS ad ON ad.connection_id = d.connection_id AND ad.ad_id = d.ad_id
    WHERE NOT EXISTS (SELECT 1 FROM staging.stg_facebook_ads__ad_report AS r
                      WHERE r.connection_id = d.connection_id AND r.ad_id IS NOT DISTINCT FROM d.ad_id
                        AND r.date_day = d.date_day)
)
SELECT
    r.*,
    CAST(coalesce(d.leads, 0) AS BIGINT) AS leads
FROM staging.stg_facebook_ads__ad_report AS r
LEFT JOIN lead_days AS d ON d.connection_id = r.connection_id AND d.ad_id = r.ad_id AND d.date_day = r.date_day
UNION ALL
SELECT * FROM undelivered
