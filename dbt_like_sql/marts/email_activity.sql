/*
description: >
  Email synced per workspace, provider and day, from the Gmail and Outlook mirrors: messages received
  and sent, threads and size. Counts only — no address, subject or body ever reaches this table.
materialized: table
columns:
  activity_date: UTC day the message was received (sent, for outgoing mail).
  workspace_id: The workspace.
  provider: gmail or outlook.
  connections: Connected mailboxes with mail that day.
  messages_received: Incoming messages.
  messages_sent: Outgoing messages.
  threads: Distinct conversation threads.
  bytes: Total size of the messages, where the provider reports it.
tests:
  - unique: [activity_date, workspace_id, provider]
  - not_null: [activity_date, workspace_id, provider, messages_received, messages_sent]
  - accepted_values: {column: provider, values: [gmail, outlook]}
*/
WITH messages AS (
    SELECT 'gmail' AS provider, connection_id, workspace_id, thread_id, outgoing, size_bytes,
           coalesce(received_at, sent_at) AS happened_at
    FROM raw_gmail.gmail_messages
    UNION ALL
    SELECT 'outlook', connection_id, workspace_id, thread_id, outgoing, size_bytes,
           coalesce(received_at, sent_at)
    FROM raw_outlook.outlook_messages
)
SELECT
    CAST(happened_at AS DATE) AS activity_date,
    workspace_id,
    provider,
    count(DISTINCT connection_id) AS connections,
    count_if(NOT coalesce(outgoing, false))::BIGINT AS messages_received,
    count_if(coalesce(outgoing, false))::BIGINT AS messages_sent,
    count(DISTINCT thread_id) AS threads,
    coalesce(sum(size_bytes), 0)::BIGINT AS bytes
FROM messages
WHERE happened_at IS NOT NULL
GROUP BY ALL
