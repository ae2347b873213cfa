/*
description: >
  Meta ads: one row per ad with the ids and current names of its account, campaign and ad set (the Meta
  structure every Meta model names its rows from, so that join is written once). Meta ad sets are ad groups;
  an ad never moves to another ad set.
materialized: view
contract: {ad_names: ad}
tests:
  - unique: [connection_id, ad_id]
  - not_null: [connection_id, ad_id]
*/
SELECT
    d.connection_id,
    d.account_id,
    a.name AS account_name,
    d.campaign_id,
    c.name AS campaign_name,
    d.adset_id AS ad_group_id,
    s.name AS ad_group_name,
    d.ad_id,
    d.name AS ad_name
FROM raw_facebook_ads.ads AS d
LEFT JOIN raw_facebook_ads.ad_accounts AS a ON a.connection_id = d.connection_id AND a.account_id = d.account_id
LEFT JOIN raw_facebook_ads.campaigns AS c ON c.connection_id = d.connection_id AND c.campaign_id = d.campaign_id
LEFT JOIN raw_facebook_ads.ad_sets AS s ON s.connection_id = d.connection_id AND s.adset_id = d.adset_id
