"""Constants of the CRM app database source: the tables it mirrors, their columns and data categories.

Every table of the app carries `workspace_id` (the tenant key of every encryption key), `updated_at` (the
incremental cursor: the app sets it on every write) and `deleted_at` (the app's soft delete). `deleted_at` is
dlt's `hard_delete` column: a row whose `deleted_at` is set is removed from the warehouse by the merge. So the
app deletes by setting `deleted_at` (and `updated_at`), and purges such rows only after the next sync.

Personal columns declare their data category and are stored encrypted (`pipelines.privacy.protect`); the
privacy engine reaches them through these hints alone. A row's data subject is the person it is about: a
user or contact by e-mail (else phone), a billing profile by its owner's e-mail (`owner_email`, joined from
`users` in the app's query and never stored). The app's own surrogate keys stay readable: they are the merge
keys, and alone they say nothing about a person.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dlt.common.schema.typing import TTableSchemaColumns

SOURCE_NAME = "crm_app"
DATASET_NAME = "raw_crm_app"
# The environment variable naming the app database (any SQLAlchemy URL: postgresql+psycopg://…); unset in the
# sandbox, where the generated SQLite file `<data>/crm_app/app.sqlite` is used.
DATABASE_URL_ENV = "GTG_CRM_APP_DATABASE_URL"
CURSOR = "updated_at"
SOFT_DELETE = "deleted_at"
CHUNK_ROWS = 50_000

# The guard against mass removal (`pipelines.crm_app.removed.RemovalGuard`). A sync refuses to remove a table's
# rows deleted outright in the app when they are more than half of the rows it mirrors: ordinary use deletes a
# few rows between hourly syncs, while a fault (an empty database behind a wrong URL, a lost grant, a
# truncated replica) makes every row look deleted, and removing them files an erasure for every user. Below
# 10 mirrored rows the guard stands aside: a table that small (a new deployment, a few test rows) turns over
# by half in ordinary use, and a guard there would stop every other sync.
REMOVAL_GUARD_SHARE = 0.5
REMOVAL_GUARD_MIN_ROWS = 10
# The tables whose removals an operator allows for the next sync (comma-separated, `*` for all).
ALLOW_REMOVALS_ENV = "GTG_CRM_APP_ALLOW_REMOVALS"

_PERSONAL: dict[str, Any] = {"data_type": "binary", "nullable": True}
_INDEX: dict[str, Any] = {"data_type": "binary", "nullable": True}


def _text(nullable: bool = True) -> dict[str, Any]:
    return {"data_type": "text", "nullable": nullable}


def _ts() -> dict[str, Any]:
    """A fresh dict per column: dlt writes each column's name into its hint dict."""
    return {"data_type": "timestamp", "timezone": True, "nullable": True}


_COMMON_TAIL: TTableSchemaColumns = {
    "created_at": _ts(),
    CURSOR: _ts(),
    SOFT_DELETE: {**_ts(), "hard_delete": True},
}


def _subject(*plain: str, categories: dict[str, str] | None = None) -> dict[str, Any]:
    hint: dict[str, Any] = {"data_type": "binary", "nullable": True, "x-subject-ref": True, "x-subject-of": list(plain)}
    if categories:
        hint["x-subject-categories"] = categories
    return hint


@dataclass(frozen=True)
class AppTable:
    """One table of the app database as the warehouse holds it: its key and its columns. `joined` names
    columns the app's query adds from another table (`column -> (table, its key in this table, column there)`),
    used only to find the row's data subject."""

    name: str
    key: str
    columns: TTableSchemaColumns
    joined: dict[str, tuple[str, str, str]] | None = None

    @property
    def declared(self) -> TTableSchemaColumns:
        """The columns with the key and workspace as primary key / not null."""
        return {"workspace_id": _text(nullable=False),
                self.key: {"data_type": "text", "nullable": False, "primary_key": True},
                **self.columns, **_COMMON_TAIL}


WORKSPACES = AppTable("workspaces", "workspace_id", {
    "name": _text(),
    "plan": _text(),
    "seats": {"data_type": "bigint", "nullable": True},
    "default_region": _text(),  # ISO 3166 region phones of its uploads default to
    "closed_at": _ts(),
})

USERS = AppTable("users", "user_id", {
    "subject_ref": _subject("email", "phone"),
    "full_name": {**_PERSONAL, "x-data-category": "user.name"},
    "email": {**_PERSONAL, "x-data-category": "user.contact.email"},
    "email_bidx": {**_INDEX, "x-blind-index-of": "email"},
    "phone": {**_PERSONAL, "x-data-category": "user.contact.phone_number"},
    "phone_bidx": {**_INDEX, "x-blind-index-of": "phone"},
    "role": _text(),
    "last_login_at": _ts(),
})

BILLING_PROFILES = AppTable("billing_profiles", "billing_profile_id", {
    "user_id": _text(),
    "subject_ref": _subject("owner_email", categories={"owner_email": "user.contact.email"}),
    "processor_customer_id": {**_PERSONAL, "x-data-category": "user.financial.account_number"},
    "card_brand": _text(),
    "card_last4": {**_PERSONAL, "x-data-category": "user.financial.credit_card"},
    "card_exp_month": {**_PERSONAL, "x-data-category": "user.financial.credit_card"},
    "card_exp_year": {**_PERSONAL, "x-data-category": "user.financial.credit_card"},
}, joined={"owner_email": ("users", "user_id", "email")})

COMPANIES = AppTable("companies", "company_id", {
    "name": _text(),
    "domain": _text(),
    "industry": _text(),
})

CONTACTS = AppTable("contacts", "contact_id", {
    "company_id": _text(),
    "subject_ref": _subject("email", "phone"),
    "first_name": {**_PERSONAL, "x-data-category": "user.name"},
    "last_name": {**_PERSONAL, "x-data-category": "user.name"},
    "email": {**_PERSONAL, "x-data-category": "user.contact.email"},
    "email_bidx": {**_INDEX, "x-blind-index-of": "email"},
    "phone": {**_PERSONAL, "x-data-category": "user.contact.phone_number"},
    "phone_bidx": {**_INDEX, "x-blind-index-of": "phone"},
    "email_opt_in": {"data_type": "bool", "nullable": True},
})

DEALS = AppTable("deals", "deal_id", {
    "contact_id": _text(),
    "company_id": _text(),
    "title": _text(),
    "stage": _text(),
    "amount": {"data_type": "double", "nullable": True},
    "currency": _text(),
    "closed_at": _ts(),
})

APP_TABLES: tuple[AppTable, ...] = (WORKSPACES, USERS, BILLING_PROFILES, COMPANIES, CONTACTS, DEALS)
TABLES: dict[str, TTableSchemaColumns] = {t.name: t.declared for t in APP_TABLES}
