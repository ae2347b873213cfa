/*
description: >
  Every contact record of every source, identified only by blind indexes: the CRM app's own contacts, uploaded
  contact lists, the Gmail and Outlook address books, and the people who filled a Meta lead form. A new source
  of contacts joins by adding one UNION ALL branch below, and every model reading this view (`contacts`,
  `contact_lists_daily`) takes it in with no other change.
materialized: view
columns:
  source: Where the record is held - app, upload, gmail, outlook or meta_leads.
  workspace_id: The workspace.
  connection_id: The connection holding it (gmail, outlook, meta_leads); null for the others.
  contact_key: The record's data subject - the blind index of its e-mail address, else of its phone number.
  email_key: Blind index of its (primary) e-mail address, if any.
  phone_key: Blind index of its (primary) phone number, if any.
  email_opt_in: Marketing e-mail consent where the source records it (app, upload); null elsewhere.
  first_seen_at: When the source first held it (created, uploaded, first known change, lead submitted).
  last_seen_at: When the source last changed or delivered it.
subject_columns: [contact_key, email_key, phone_key]
*/
SELECT 'app' AS source, workspace_id, CAST(NULL AS VARCHAR) AS connection_id, subject_ref AS contact_key,
       email_bidx AS email_key, phone_bidx AS phone_key, email_opt_in, created_at AS first_seen_at,
       updated_at AS last_seen_at
FROM raw_crm_app.contacts
UNION ALL
SELECT 'upload', workspace_id, NULL, subject_ref, email_bidx, phone_bidx, email_opt_in, uploaded_at, uploaded_at
FROM raw_contact_uploads.uploaded_contacts
UNION ALL
SELECT 'gmail', workspace_id, connection_id, subject_ref, primary_email_bidx, primary_phone_bidx, NULL,
       coalesce(updated_at, synced_at), coalesce(updated_at, synced_at)
FROM raw_gmail.gmail_contacts
UNION ALL
SELECT 'outlook', workspace_id, connection_id, subject_ref, primary_email_bidx, primary_phone_bidx, NULL,
       coalesce(updated_at, synced_at), coalesce(updated_at, synced_at)
FROM raw_outlook.outlook_contacts
UNION ALL
SELECT 'meta_leads', workspace_id, connection_id, subject_ref, email_bidx, phone_number_bidx, NULL, created_time,
       created_time
FROM raw_facebook_ads.leads
