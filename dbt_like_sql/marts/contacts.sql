/*
description: >
  One row per workspace and person across every source of contacts (`staging.stg_contacts`: the CRM app, uploaded
  lists, Gmail, Outlook, Meta lead forms). A person is their e-mail
  address's blind index, else their phone number's; a record with only a phone number joins the person whose
  record holds that number with an e-mail address. No readable value: keys, flags, dates and source names.
materialized: table
columns:
  workspace_id: The workspace.
  contact_key: The person's pseudonymous key (blind index of their e-mail address, else of their phone number).
  sources: The sources holding them, comma-separated in alphabetical order (app, gmail, meta_leads, outlook,
    upload).
  source_count: How many sources hold them.
  first_seen_at: When the first source first held them.
  last_seen_at: When a source last changed or delivered them.
  has_email: Whether any source holds an e-mail address of theirs.
  has_phone: Whether any source holds a phone number of theirs.
  email_opt_in: True when a source records marketing e-mail consent, false when sources record only refusals,
    null when none records it.
subject_columns: [contact_key]
tests:
  - unique: [workspace_id, contact_key]
  - not_null: [workspace_id, contact_key, sources, source_count, has_email, has_phone]
*/
WITH phone_owner AS (
    SELECT workspace_id, phone_key, min(email_key) AS email_key
    FROM staging.stg_contacts
    WHERE email_key IS NOT NULL AND phone_key IS NOT NULL
    GROUP BY workspace_id, phone_key
),
keyed AS (
    SELECT c.*, coalesce(c.email_key, o.email_key, c.phone_key) AS person_key
    FROM staging.stg_contacts AS c
    LEFT JOIN phone_owner AS o
        ON c.email_key IS NULL AND o.workspace_id = c.workspace_id AND o.phone_key = c.phone_key
)
SELECT
    workspace_id,
    person_key AS contact_key,
    array_to_string(list_sort(list_distinct(list(source))), ',') AS sources,  -- one form DuckDB and Spark both run
    count(DISTINCT source) AS source_count,
    min(first_seen_at) AS first_seen_at,
    max(last_seen_at) AS last_seen_at,
    bool_or(email_key IS NOT NULL) AS has_email,
    bool_or(phone_key IS NOT NULL) AS has_phone,
    bool_or(email_opt_in) AS email_opt_in
FROM keyed
WHERE person_key IS NOT NULL
GROUP BY workspace_id, person_key
