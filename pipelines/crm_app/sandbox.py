"""The sandbox's app database: a SQLite file with the app's schema, generated once and changed at every
`advance` (new contacts, edits, soft and hard deletes, a plan change, a closed account), so each `make run` has
something new to sync.

People come from the mail sandbox's fake population (reserved domains, fictional phone numbers): the first
contacts of `ws_0001` are the address book of its sandbox Gmail account, so the contacts model shows the same
person held by two sources.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import sqlalchemy as sa

from pipelines.crm_app import app_schema as app
from pipelines.sandbox.mail.people import person

SANDBOX_SEED = 17
# The mail sandbox's seed for account 0 (ws_0001's Gmail account): its contacts are person(7000, 0..).
MAIL_ACCOUNT_SEED = 7000
WORKSPACES = ("ws_0001", "ws_0002", "ws_0003", "ws_0004", "ws_0005")
PLANS = ("free", "starter", "growth", "enterprise")
REGIONS = ("US", "US", "GB", "DE", "US")
ROLES = ("owner", "admin", "member", "member", "member")
CARD_BRANDS = ("visa", "mastercard", "amex")
STAGES = ("lead", "qualified", "proposal", "won", "lost")


def sandbox_url(path: str | Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


# How many rounds of activity the sandbox has played (not an app table: the source never reads it).
_state_metadata = sa.MetaData()
STATE = sa.Table("sandbox_state", _state_metadata, sa.Column("round", sa.Integer, nullable=False))


def create(url: str, *, users: int = 6, contacts: int = 40, companies: int = 8, deals: int = 12,
           now: dt.datetime | None = None) -> None:
    """Create the app schema and fill it (idempotent: a database already holding workspaces is left as is)."""
    engine = sa.create_engine(url)
    now = now or dt.datetime.now(dt.timezone.utc)
    state = STATE
    try:
        app.metadata.create_all(engine)
        _state_metadata.create_all(engine)
        with engine.begin() as con:
            if con.execute(sa.select(sa.func.count()).select_from(app.workspaces)).scalar():
                return
            rng = random.Random(SANDBOX_SEED)
            for w, workspace_id in enumerate(WORKSPACES):
                created = now - dt.timedelta(days=400 - 60 * w)
                con.execute(app.workspaces.insert(), [dict(
                    workspace_id=workspace_id, name=f"Sandbox company {w + 1}", plan=PLANS[w % len(PLANS)],
                    seats=users + 4 * w, default_region=REGIONS[w], created_at=created, updated_at=created)])
                _users(con, rng, workspace_id, w, users, created)
                _companies_contacts_deals(con, rng, workspace_id, w, companies, contacts, deals, created)
            con.execute(state.insert(), [{"round": 0}])
    finally:
        engine.dispose()


def _users(con, rng: random.Random, workspace_id: str, w: int, count: int, created: dt.datetime) -> None:
    rows, billing = [], []
    for u in range(count):
        who = person(SANDBOX_SEED * 100 + w, u)
        user_id = f"usr_{w + 1:02d}{u:04d}"
        rows.append(dict(user_id=user_id, workspace_id=workspace_id, full_name=who.display_name, email=who.email,
                         phone=who.phone_display if rng.random() < 0.7 else None, role=ROLES[min(u, len(ROLES) - 1)],
                         last_login_at=created + dt.timedelta(days=rng.randrange(1, 300)), created_at=created,
                         updated_at=created))
        if u == 0:
            billing.append(dict(billing_profile_id=f"bp_{w + 1:02d}", workspace_id=workspace_id, user_id=user_id,
                                processor_customer_id=f"cus_{rng.getrandbits(48):012x}",
                                card_brand=CARD_BRANDS[w % 3], card_last4=f"{rng.randrange(10_000):04d}",
                                card_exp_month=rng.randrange(1, 13), card_exp_year=2027 + w % 4,
                                created_at=created, updated_at=created))
    con.execute(app.users.insert(), rows)
    con.execute(app.billing_profiles.insert(), billing)


def _contact(rng: random.Random, workspace_id: str, w: int, i: int, companies: int, now: dt.datetime) -> dict:
    who = person(MAIL_ACCOUNT_SEED, i) if w == 0 and i < 20 else person(SANDBOX_SEED * 1000 + w, i)
    return dict(contact_id=f"ct_{w + 1:02d}{i:05d}", workspace_id=workspace_id,
                company_id=f"co_{w + 1:02d}{rng.randrange(companies):03d}", first_name=who.given_name,
                last_name=who.family_name, email=who.email if rng.random() < 0.9 else None,
                phone=who.phone if rng.random() < 0.6 else None, email_opt_in=rng.random() < 0.5,
                created_at=now, updated_at=now)


def _companies_contacts_deals(con, rng: random.Random, workspace_id: str, w: int, companies: int, contacts: int,
                              deals: int, created: dt.datetime) -> None:
    con.execute(app.companies.insert(), [dict(
        company_id=f"co_{w + 1:02d}{c:03d}", workspace_id=workspace_id, name=f"Customer {c + 1} of {workspace_id}",
        domain=f"customer{c + 1}.test", industry=rng.choice(("software", "retail", "health", "logistics")),
        created_at=created, updated_at=created) for c in range(companies)])
    con.execute(app.contacts.insert(), [_contact(rng, workspace_id, w, i, companies, created) for i in range(contacts)])
    con.execute(app.deals.insert(), [dict(
        deal_id=f"dl_{w + 1:02d}{d:04d}", workspace_id=workspace_id, contact_id=f"ct_{w + 1:02d}{d:05d}",
        company_id=f"co_{w + 1:02d}{d % companies:03d}", title=f"Renewal {d + 1}", stage=STAGES[d % len(STAGES)],
        amount=float(1000 + 250 * d), currency="EUR", created_at=created, updated_at=created) for d in range(deals)])


def advance(url: str, now: dt.datetime | None = None) -> dict[str, int]:
    """One round of app activity: 5 new contacts in each workspace, 3 contacts edited, 2 soft-deleted and 1
    deleted outright (a hard delete, found by the sync's key comparison), one workspace's plan changed and (every round from the first) one member's account closed. Returns counts."""
    engine = sa.create_engine(url)
    now = now or dt.datetime.now(dt.timezone.utc)
    state = STATE
    try:
        with engine.begin() as con:
            round_ = con.execute(sa.select(state.c.round)).scalar() + 1
            con.execute(state.update().values(round=round_))
            rng = random.Random(SANDBOX_SEED * 10_000 + round_)
            counts = {"contacts_added": 0, "contacts_updated": 0, "contacts_deleted": 0, "contacts_purged": 0,
                      "users_closed": 0}
            for w, workspace_id in enumerate(WORKSPACES):
                held = [r[0] for r in con.execute(sa.select(app.contacts.c.contact_id).where(
                    app.contacts.c.workspace_id == workspace_id, app.contacts.c.deleted_at.is_(None))
                    .order_by(app.contacts.c.contact_id))]
                start = con.execute(sa.select(sa.func.count()).select_from(app.contacts).where(
                    app.contacts.c.workspace_id == workspace_id)).scalar()
                con.execute(app.contacts.insert(), [_contact(rng, workspace_id, w, start + i, 8, now) for i in range(5)])
                edited, deleted, purged = held[:3], held[3:5], held[-1:]  # the newest: no deal refers to it
                con.execute(app.contacts.update().where(app.contacts.c.contact_id.in_(edited)).values(
                    email_opt_in=sa.not_(app.contacts.c.email_opt_in), updated_at=now))
                con.execute(app.contacts.update().where(app.contacts.c.contact_id.in_(deleted)).values(
                    deleted_at=now, updated_at=now))
                con.execute(app.contacts.delete().where(app.contacts.c.contact_id.in_(purged)))
                counts["contacts_added"] += 5
                counts["contacts_updated"] += len(edited)
                counts["contacts_deleted"] += len(deleted)
                counts["contacts_purged"] += len(purged)
            changed = WORKSPACES[round_ % len(WORKSPACES)]
            con.execute(app.workspaces.update().where(app.workspaces.c.workspace_id == changed).values(
                plan=PLANS[(round_ + 1) % len(PLANS)], seats=app.workspaces.c.seats + 1, updated_at=now))
            member = con.execute(sa.select(app.users.c.user_id).where(
                app.users.c.role == "member", app.users.c.deleted_at.is_(None)).order_by(app.users.c.user_id)).first()
            if member:
                con.execute(app.users.update().where(app.users.c.user_id == member[0]).values(
                    deleted_at=now, updated_at=now))
                counts["users_closed"] += 1
        return counts
    finally:
        engine.dispose()
