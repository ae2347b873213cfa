"""Constants of the contact-list uploads: the landing zone, the tables, their columns and data categories, and
the header names people actually use.

Users upload contact lists (CSV, or Excel `.xlsx`) through the app, which writes each to
`<landing>/<workspace>/<name>.csv|.xlsx` (GTG_CONTACTS_LANDING_URL, default `<data>/landing/contacts`). Each
file is loaded once, whole, and then deleted from the landing zone: the platform keeps no raw copy.
"""

from __future__ import annotations

from typing import Any

from dlt.common.schema.typing import TTableSchemaColumns

SOURCE_NAME = "contact_uploads"
DATASET_NAME = "raw_contact_uploads"
CONTACTS_TABLE = "uploaded_contacts"
QUARANTINE_TABLE = "uploaded_contacts_quarantine"
LEDGER_TABLE = "contact_upload_files"
SUFFIXES = (".csv", ".xlsx")
# How a file is found: a folder per workspace. Temporary names (`.tmp`, `.part`, a leading `.` or `_`) are
# never read: the app writes under one and renames when the upload is whole.
NOT_TAKEN_SUFFIXES = (".tmp", ".part", "._COPYING_")

_PERSONAL: dict[str, Any] = {"data_type": "binary", "nullable": True}


def _ts() -> dict[str, Any]:
    """A fresh dict per column: dlt writes each column's name into its hint dict."""
    return {"data_type": "timestamp", "timezone": True, "nullable": False}

# One row per workspace and person (the blind index of their e-mail, else their phone): a later upload of the
# same person replaces the row; within one upload the first row of a person wins.
CONTACT_COLUMNS: TTableSchemaColumns = {
    "workspace_id": {"data_type": "text", "nullable": False, "primary_key": True},
    "subject_ref": {"data_type": "binary", "nullable": False, "primary_key": True, "x-subject-ref": True,
                    "x-subject-of": ["email", "phone"]},
    "first_name": {**_PERSONAL, "x-data-category": "user.name"},
    "last_name": {**_PERSONAL, "x-data-category": "user.name"},
    "email": {**_PERSONAL, "x-data-category": "user.contact.email"},
    "email_bidx": {**_PERSONAL, "x-blind-index-of": "email"},
    "phone": {**_PERSONAL, "x-data-category": "user.contact.phone_number"},
    "phone_bidx": {**_PERSONAL, "x-blind-index-of": "phone"},
    "company": {**_PERSONAL, "x-data-category": "user.job.organization"},
    "email_opt_in": {"data_type": "bool", "nullable": True},
    "source_file": {"data_type": "text", "nullable": False},
    "source_row": {"data_type": "bigint", "nullable": False},
    "uploaded_at": _ts(),
}

# One row per rejected row (or per rejected file, row 0): where and why, never a value.
QUARANTINE_COLUMNS: TTableSchemaColumns = {
    "source_file": {"data_type": "text", "nullable": False, "primary_key": True},
    "source_row": {"data_type": "bigint", "nullable": False, "primary_key": True},
    "workspace_id": {"data_type": "text", "nullable": True},
    "reason": {"data_type": "text", "nullable": False},
    "received_at": _ts(),
}

# One row per loaded file version: what makes each upload load exactly once.
LEDGER_COLUMNS: TTableSchemaColumns = {
    "source_file": {"data_type": "text", "nullable": False, "primary_key": True},
    "sha256": {"data_type": "text", "nullable": False, "primary_key": True},
    "workspace_id": {"data_type": "text", "nullable": True},
    "size_bytes": {"data_type": "bigint", "nullable": False},
    "encoding": {"data_type": "text", "nullable": True},
    "rows": {"data_type": "bigint", "nullable": False},
    "contacts_loaded": {"data_type": "bigint", "nullable": False},
    "duplicates_dropped": {"data_type": "bigint", "nullable": False},
    "rows_quarantined": {"data_type": "bigint", "nullable": False},
    "status": {"data_type": "text", "nullable": False},  # loaded | rejected
    "received_at": _ts(),
}

TABLES: dict[str, TTableSchemaColumns] = {CONTACTS_TABLE: CONTACT_COLUMNS, QUARANTINE_TABLE: QUARANTINE_COLUMNS,
                                          LEDGER_TABLE: LEDGER_COLUMNS}

# Quarantine reasons (codes): a row's, then a whole file's.
REASONS = {
    "invalid_email": "the e-mail address is not valid",
    "invalid_phone": "the phone number is not valid for the workspace's region",
    "no_identifier": "the row has neither an e-mail address nor a phone number",
    "ragged_row": "the row has more fields than the header: its values cannot be told apart",
    "malformed_row": "the row's quoting is broken (a stray quote, or a quote still open where the file ends)",
    "unknown_workspace": "the file's folder is not a workspace the platform knows",
    "undecodable_file": "the file is in none of the accepted encodings",
    "unreadable_file": "the file is not a CSV or Excel file that can be parsed",
    "no_contact_columns": "no column holds e-mail addresses or phone numbers",
}

# Header names as people, Google Contacts and Outlook export them, reduced to lower-case letters and digits
# ("E-mail Address" -> "emailaddress"); for each field, the first header present wins.
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "email": ("email", "emailaddress", "email1value", "primaryemail", "workemail", "mail", "emailaddr",
              "courriel", "emailadresse"),
    "phone": ("mobilephone", "mobile", "mobilenumber", "cellphone", "cell", "phone1value", "phone", "phonenumber",
              "primaryphone", "telephone", "tel", "businessphone", "homephone", "telefon"),
    "first_name": ("firstname", "givenname", "first", "forename", "vorname", "prenom"),
    "last_name": ("lastname", "familyname", "surname", "last", "nachname", "nom"),
    "full_name": ("name", "fullname", "displayname", "contactname", "contact"),
    "company": ("company", "companyname", "organization", "organisation", "organizationname", "organization1name",
                "account", "firma"),
    "email_opt_in": ("emailoptin", "optin", "consent", "subscribed", "marketingconsent", "acceptsmarketing",
                     "emailconsent"),
}
TRUE_VALUES = frozenset({"true", "yes", "y", "1", "x", "subscribed", "opted in", "opt-in", "ja", "oui"})
FALSE_VALUES = frozenset({"false", "no", "n", "0", "unsubscribed", "opted out", "opt-out", "nein", "non"})
