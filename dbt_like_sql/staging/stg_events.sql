/*
description: >
  Usage events as analytics reads them: one row per loaded event, people only as pseudonymous keys (the
  blind indexes stored at load), never their identifiers. Events without analytics consent have no keys.
  A key is a keyed hash under its workspace's own key, so the same key never appears in two workspaces:
  count(DISTINCT visitor_key) counts people across workspaces without pairing it with workspace_id.
materialized: view
changes: {load_id: load_id, day: event_date}  # how incremental models find the days later loads touched
columns:
  event_id: The tracker's unique event id.
  workspace_id: The GTG CRM workspace (customer account).
  visitor_key: Pseudonymous visitor (blind index of the user id, else the cookie id, else the device id).
  user_key: Pseudonymous signed-in user (blind index of the user id); null for anonymous visitors.
  event_type: page_view, click, session_start, session_end or a custom type.
  occurred_at: When the event happened (UTC).
  event_date: The UTC day of occurred_at.
  page_host: Host of the page.
  page_path: Path of the page, without query string.
  referrer_host: Host of the referring page.
  utm_source: utm_source of the page URL.
  utm_medium: utm_medium of the page URL.
  utm_campaign: utm_campaign of the page URL.
  clicked_element: For clicks, the element clicked (properties.element).
  device_class: desktop, mobile, tablet or bot.
  browser_family: Browser family (ua-parser).
  os_family: Operating system family (ua-parser).
  device_family: Device family (ua-parser).
  is_bot: The user agent is a known crawler or bot.
  consent_analytics: The visitor allowed analytics.
  consent_ads: The visitor allowed personalised ads.
  load_id: The load that brought the event (dlt's load id; a later load has a greater one).
tests:
  - unique: event_id
  - not_null: [event_id, workspace_id, event_type, occurred_at, event_date]
*/
SELECT
    event_id,
    workspace_id,
    subject_ref AS visitor_key,
    user_id_bidx AS user_key,
    event_type,
    occurred_at,
    CAST(occurred_at AS DATE) AS event_date,
    page_host,
    page_path,
    referrer_host,
    utm_source,
    utm_medium,
    utm_campaign,
    CASE WHEN event_type = 'click' THEN json_extract_string(properties, '$.element') END AS clicked_element,
    device_class,
    browser_family,
    os_family,
    device_family,
    is_bot,
    consent_analytics,
    consent_ads,
    _dlt_load_id AS load_id
FROM raw_events.usage_events
