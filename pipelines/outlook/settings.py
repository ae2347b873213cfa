"""Constants of the Outlook source: tables, columns, folders and page sizes (logic lives beside)."""

from dlt.common.schema.typing import TTableSchemaColumns

from pipelines.mail_common.columns import CONTACT_COLUMNS, MESSAGE_COLUMNS
from pipelines.mail_common.recipients import recipients_of
from pipelines.mail_common.stage import Stream, mail_table

SOURCE_NAME = "outlook"
DATASET_NAME = "raw_outlook"
MESSAGES_TABLE = "outlook_messages"
CONTACTS_TABLE = "outlook_contacts"
RECIPIENTS_TABLE = "outlook_message_recipients"

# The well-known mail folders synced, each through its own delta link.
FOLDERS = ("inbox", "sentitems")

MESSAGE_COLUMNS_OUTLOOK: TTableSchemaColumns = mail_table("message_id", {
    **MESSAGE_COLUMNS,
    "folder": {"data_type": "text", "nullable": True},
    "is_read": {"data_type": "bool", "nullable": True},
    "importance": {"data_type": "text", "nullable": True},
    "categories": {"data_type": "text", "nullable": True},  # JSON list
    "body_type": {"data_type": "text", "nullable": True},  # what Graph sent: text or html (body_text is text)
})
CONTACT_COLUMNS_OUTLOOK: TTableSchemaColumns = mail_table("contact_id", CONTACT_COLUMNS)

MESSAGES = Stream(DATASET_NAME, MESSAGES_TABLE, "message_id", MESSAGE_COLUMNS_OUTLOOK, scope="folder",
                  child=recipients_of(RECIPIENTS_TABLE))
CONTACTS = Stream(DATASET_NAME, CONTACTS_TABLE, "contact_id", CONTACT_COLUMNS_OUTLOOK)

PAGE_SIZE = 1000  # Prefer: odata.maxpagesize (Graph's maximum for messages delta)
HTTP_TIMEOUT_S = 60
MICROSOFT_TOKEN_URL = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"
SCOPES = "offline_access Mail.Read Contacts.Read"
