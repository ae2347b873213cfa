"""Constants of the Gmail source: tables, columns and request sizes (logic lives beside, in the modules)."""

from dlt.common.schema.typing import TTableSchemaColumns

from pipelines.mail_common.columns import CONTACT_COLUMNS, MESSAGE_COLUMNS
from pipelines.mail_common.recipients import recipients_of
from pipelines.mail_common.stage import Stream, mail_table

SOURCE_NAME = "gmail"
DATASET_NAME = "raw_gmail"
MESSAGES_TABLE = "gmail_messages"
CONTACTS_TABLE = "gmail_contacts"
RECIPIENTS_TABLE = "gmail_message_recipients"

MESSAGE_COLUMNS_GMAIL: TTableSchemaColumns = mail_table("message_id", {
    **MESSAGE_COLUMNS,
    "label_ids": {"data_type": "text", "nullable": True},  # JSON list, sorted
    "history_id": {"data_type": "bigint", "nullable": True},
})
CONTACT_COLUMNS_GMAIL: TTableSchemaColumns = mail_table("contact_id", CONTACT_COLUMNS)

MESSAGES = Stream(DATASET_NAME, MESSAGES_TABLE, "message_id", MESSAGE_COLUMNS_GMAIL,
                  child=recipients_of(RECIPIENTS_TABLE))
CONTACTS = Stream(DATASET_NAME, CONTACTS_TABLE, "contact_id", CONTACT_COLUMNS_GMAIL)

# messages.list pages of 500 ids (the API's maximum) and batches of 100 gets (the batch endpoint's maximum):
# 2 + 10 HTTP requests per 1,000 messages on a full sync.
LIST_PAGE_SIZE = 500
BATCH_SIZE = 100
HISTORY_PAGE_SIZE = 500
PEOPLE_PAGE_SIZE = 1000
PERSON_FIELDS = "names,emailAddresses,phoneNumbers,organizations,metadata"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
HTTP_TIMEOUT_S = 60
