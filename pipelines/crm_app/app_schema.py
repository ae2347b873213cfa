"""The CRM app database's tables as the app defines them (SQLAlchemy Core), for the sandbox and the tests.

The platform never creates these in a real app database: it only reads them. The sandbox generates a SQLite
file with this schema, and the tests create it in a real PostgreSQL server, so both run the same source.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()


def _times() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
    ]


workspaces = sa.Table(
    "workspaces", metadata,
    sa.Column("workspace_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("plan", sa.Text, nullable=False),
    sa.Column("seats", sa.Integer, nullable=False),
    sa.Column("default_region", sa.Text, nullable=False),
    sa.Column("closed_at", sa.DateTime(timezone=True)),
    *_times(),
)

users = sa.Table(
    "users", metadata,
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("workspace_id", sa.Text, sa.ForeignKey("workspaces.workspace_id"), nullable=False),
    sa.Column("full_name", sa.Text),
    sa.Column("email", sa.Text, nullable=False),
    sa.Column("phone", sa.Text),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("last_login_at", sa.DateTime(timezone=True)),
    *_times(),
)

billing_profiles = sa.Table(
    "billing_profiles", metadata,
    sa.Column("billing_profile_id", sa.Text, primary_key=True),
    sa.Column("workspace_id", sa.Text, sa.ForeignKey("workspaces.workspace_id"), nullable=False),
    sa.Column("user_id", sa.Text, sa.ForeignKey("users.user_id"), nullable=False),
    sa.Column("processor_customer_id", sa.Text, nullable=False),
    sa.Column("card_brand", sa.Text),
    sa.Column("card_last4", sa.Text),
    sa.Column("card_exp_month", sa.Integer),
    sa.Column("card_exp_year", sa.Integer),
    *_times(),
)

companies = sa.Table(
    "companies", metadata,
    sa.Column("company_id", sa.Text, primary_key=True),
    sa.Column("workspace_id", sa.Text, sa.ForeignKey("workspaces.workspace_id"), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("domain", sa.Text),
    sa.Column("industry", sa.Text),
    *_times(),
)

contacts = sa.Table(
    "contacts", metadata,
    sa.Column("contact_id", sa.Text, primary_key=True),
    sa.Column("workspace_id", sa.Text, sa.ForeignKey("workspaces.workspace_id"), nullable=False),
    sa.Column("company_id", sa.Text, sa.ForeignKey("companies.company_id")),
    sa.Column("first_name", sa.Text),
    sa.Column("last_name", sa.Text),
    sa.Column("email", sa.Text),
    sa.Column("phone", sa.Text),
    sa.Column("email_opt_in", sa.Boolean, nullable=False, default=False),
    *_times(),
)

deals = sa.Table(
    "deals", metadata,
    sa.Column("deal_id", sa.Text, primary_key=True),
    sa.Column("workspace_id", sa.Text, sa.ForeignKey("workspaces.workspace_id"), nullable=False),
    sa.Column("contact_id", sa.Text, sa.ForeignKey("contacts.contact_id")),
    sa.Column("company_id", sa.Text, sa.ForeignKey("companies.company_id")),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("stage", sa.Text, nullable=False),
    sa.Column("amount", sa.Float),
    sa.Column("currency", sa.Text),
    sa.Column("closed_at", sa.DateTime(timezone=True)),
    *_times(),
)
