"""The CRM app database source, against SQLite and a real PostgreSQL: inserts, updates and soft deletes in
the app between two syncs leave an exact mirror (personal columns encrypted, decrypting to the app's values
normalised), a closed account files one erasure request, and that erasure reaches the user, their billing
profile and the app's contact of the same person, leaving no byte of them on disk."""

from __future__ import annotations

import datetime as dt

import duckdb

from pipelines.crm_app import app_schema as app_tables
from pipelines.crm_app.settings import APP_TABLES, DATASET_NAME
from pipelines.privacy.audit import AuditLog
from pipelines.privacy.categories import stored_tables
from pipelines.privacy.dsr import process_pending
from pipelines.privacy.scan import card_number_values, unprotected_values
from tests.conftest import found_in_files
from tests.crm_app.conftest import AppPlatform

T0 = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.timezone.utc)
T1 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.timezone.utc)
ANN = "ann.lee@example.com"


def _times(at: dt.datetime = T0) -> dict:
    return {"created_at": at, "updated_at": at}


def _seed(app: AppPlatform) -> None:
    app.execute(app_tables.workspaces.insert(), [
        {"workspace_id": "ws_a", "name": "Alpha", "plan": "starter", "seats": 5, "default_region": "GB", **_times()},
        {"workspace_id": "ws_b", "name": "Beta", "plan": "free", "seats": 1, "default_region": "US", **_times()}])
    app.execute(app_tables.users.insert(), [
        {"user_id": "u1", "workspace_id": "ws_a", "full_name": "Ann Lee", "email": " Ann.Lee@Example.com",
         "phone": "+44 20 7946 0018", "role": "owner", "last_login_at": T0, **_times()},
        {"user_id": "u2", "workspace_id": "ws_a", "full_name": "Bo Chen", "email": "bo@example.com", "phone": None,
         "role": "member", "last_login_at": None, **_times()},
        {"user_id": "u3", "workspace_id": "ws_b", "full_name": "Cy Diaz", "email": "cy@example.org",
         "phone": "+1 (202) 555-0101", "role": "owner", "last_login_at": None, **_times()}])
    app.execute(app_tables.billing_profiles.insert(), [
        {"billing_profile_id": "bp1", "workspace_id": "ws_a", "user_id": "u1", "processor_customer_id": "cus_A1",
         "card_brand": "visa", "card_last4": "4242", "card_exp_month": 3, "card_exp_year": 2028, **_times()}])
    app.execute(app_tables.companies.insert(), [
        {"company_id": "co1", "workspace_id": "ws_a", "name": "Acme", "domain": "acme.test", "industry": "retail",
         **_times()}])
    app.execute(app_tables.contacts.insert(), [
        {"contact_id": "c1", "workspace_id": "ws_a", "company_id": "co1", "first_name": "Ann", "last_name": "Lee",
         "email": "ANN.LEE@example.com", "phone": None, "email_opt_in": True, **_times()},
        {"contact_id": "c2", "workspace_id": "ws_a", "company_id": "co1", "first_name": "Dee", "last_name": "Fox",
         "email": None, "phone": "+1 202 555 0102", "email_opt_in": False, **_times()}])
    app.execute(app_tables.deals.insert(), [
        {"deal_id": "d1", "workspace_id": "ws_a", "contact_id": "c1", "company_id": "co1", "title": "Renewal",
         "stage": "won", "amount": 1200.5, "currency": "EUR", "closed_at": None, **_times()}])


def _user(user_id, workspace_id, name, email, phone, role, login, at=T0) -> dict:
    return {"workspace_id": workspace_id, "user_id": user_id, "full_name": name, "email": email, "phone": phone,
            "role": role, "last_login_at": login, "created_at": T0, "updated_at": at, "deleted_at": None}


def _contact(contact_id, first, last, email, phone, opt_in, at=T0) -> dict:
    return {"workspace_id": "ws_a", "contact_id": contact_id, "company_id": "co1", "first_name": first,
            "last_name": last, "email": email, "phone": phone, "email_opt_in": opt_in, "created_at": T0,
            "updated_at": at, "deleted_at": None}


def test_two_syncs_mirror_inserts_updates_and_soft_deletes(app: AppPlatform) -> None:
    _seed(app)
    first = app.sync()
    assert {t: c.read for t, c in first.items()} == {
        "workspaces": 2, "users": 3, "billing_profiles": 1, "companies": 1, "contacts": 2, "deals": 1}
    assert app.stored("users") == [
        _user("u1", "ws_a", "Ann Lee", ANN, "+442079460018", "owner", T0),
        _user("u2", "ws_a", "Bo Chen", "bo@example.com", None, "member", None),
        _user("u3", "ws_b", "Cy Diaz", "cy@example.org", "+12025550101", "owner", None)]
    assert app.stored("billing_profiles") == [{
        "workspace_id": "ws_a", "billing_profile_id": "bp1", "user_id": "u1", "processor_customer_id": "cus_A1",
        "card_brand": "visa", "card_last4": "4242", "card_exp_month": "3", "card_exp_year": "2028",
        "created_at": T0, "updated_at": T0, "deleted_at": None}]

    users, contacts, workspaces = app_tables.users, app_tables.contacts, app_tables.workspaces
    app.execute(users.update().where(users.c.user_id == "u2").values(full_name="Bo Chen-Wu", updated_at=T1))
    app.execute(contacts.update().where(contacts.c.contact_id == "c2").values(deleted_at=T1, updated_at=T1))
    app.execute(contacts.insert(), [{"contact_id": "c3", "workspace_id": "ws_a", "company_id": None,
                                     "first_name": "Eve", "last_name": None, "email": "eve@example.net",
                                     "phone": None, "email_opt_in": False, **_times(T1)}])
    app.execute(workspaces.update().where(workspaces.c.workspace_id == "ws_b").values(plan="growth", seats=3,
                                                                                        updated_at=T1))
    second = app.sync()  # only what changed: the rows at the cursor that were loaded already are not read again
    assert {t: (c.read, c.deleted) for t, c in second.items()} == {
        "workspaces": (1, 0), "users": (1, 0), "billing_profiles": (0, 0), "companies": (0, 0), "contacts": (2, 1),
        "deals": (0, 0)}
    assert app.stored("users")[1] == _user("u2", "ws_a", "Bo Chen-Wu", "bo@example.com", None, "member", None, T1)
    assert app.stored("contacts") == [
        _contact("c1", "Ann", "Lee", ANN, None, True),
        {**_contact("c3", "Eve", None, "eve@example.net", None, False, T1), "company_id": None, "created_at": T1}]
    assert [(w["workspace_id"], w["plan"], w["seats"]) for w in app.stored("workspaces")] == [
        ("ws_a", "starter", 5), ("ws_b", "growth", 3)]
    assert len(app.stored("deals")) == 1 and app.stored("deals")[0]["amount"] == 1200.5
    assert app.platform.known_workspaces() == {"ws_a", "ws_b"}
    assert app.inbox.all() == []  # no account closed


def test_personal_columns_are_declared_and_stored_only_as_ciphertext(app: AppPlatform) -> None:
    _seed(app)
    app.sync()
    with duckdb.connect(str(app.platform.warehouse), read_only=True) as con:
        tables = stored_tables(con, DATASET_NAME)
        assert {t: unprotected_values(con, DATASET_NAME, t, tables[t]) for t in ("users", "contacts")} == {
            "users": {"full_name": 0, "email": 0, "phone": 0},
            "contacts": {"first_name": 0, "last_name": 0, "email": 0, "phone": 0}}
        assert tables["billing_profiles"]["card_last4"]["x-data-category"] == "user.financial.credit_card"
        assert sorted(tables) == sorted(t.name for t in APP_TABLES)
        assert card_number_values(con) == {}


def test_a_card_number_planted_in_free_text_is_found(app: AppPlatform) -> None:
    _seed(app)
    deals = app_tables.deals
    app.execute(deals.update().where(deals.c.deal_id == "d1").values(
        title="paid by 4111-1111-1111-1111, call back", updated_at=T1))
    app.execute(deals.insert(), [{"deal_id": "d2", "workspace_id": "ws_a", "contact_id": None, "company_id": None,
                                  "title": "order 1234 5678 9012 3456 (not a card: fails Luhn)", "stage": "lead",
                                  "amount": None, "currency": None, "closed_at": None, **_times(T1)}])
    app.sync()
    with duckdb.connect(str(app.platform.warehouse), read_only=True) as con:
        assert card_number_values(con) == {"raw_crm_app.deals.title": 1}


def test_a_closed_account_is_erased_across_every_table(app: AppPlatform) -> None:
    _seed(app)
    app.sync()
    assert found_in_files(app.root, {ANN, "Ann Lee", "cus_A1"}) == {}
    users = app_tables.users
    app.execute(users.update().where(users.c.user_id == "u1").values(deleted_at=T1, updated_at=T1))
    counts = app.sync()
    assert counts["users"].deleted == 1
    assert [u["user_id"] for u in app.stored("users")] == ["u2", "u3"]
    (request,) = app.inbox.all()
    assert (request["request_type"], request["workspace_id"], request["identity_kind"], request["source"]) == (
        "erasure", "ws_a", "email", "crm_app")
    app.sync()  # the closed account is not filed twice
    assert len(app.inbox.all()) == 1

    with app.platform.keyring() as cipher, duckdb.connect(str(app.platform.warehouse)) as con:
        report = process_pending(con, cipher, app.inbox, AuditLog.of(app.root / "privacy" / "audit.jsonl", cipher),
                                 exports_dir=app.root / "exports", landing_urls={})
    assert report.count("completed") == 1
    assert report.rows_by_table == {"raw_crm_app.billing_profiles": 1, "raw_crm_app.contacts": 1}
    assert app.stored("billing_profiles") == []
    assert [c["contact_id"] for c in app.stored("contacts")] == ["c2"]
    assert [u["user_id"] for u in app.stored("users")] == ["u2", "u3"]
    assert found_in_files(app.root, {ANN, "Ann Lee", "cus_A1"}) == {}


def test_rows_deleted_outright_in_the_app_are_removed_here(app: AppPlatform) -> None:
    """A hard delete (the row gone, no `deleted_at`) is found by the key comparison of the next sync: the row
    leaves the warehouse like a soft-deleted one, and a user deleted so files the same erasure request."""
    _seed(app)
    app.sync()
    contacts, users, deals = app_tables.contacts, app_tables.users, app_tables.deals
    app.execute(deals.delete())
    app.execute(contacts.delete().where(contacts.c.contact_id == "c2"))
    app.execute(users.delete().where(users.c.user_id == "u2"))
    app.execute(contacts.update().where(contacts.c.contact_id == "c1").values(last_name="Lee-Ray", updated_at=T1))
    counts = app.sync()
    assert {t: (c.read, c.deleted, c.hard_deleted) for t, c in counts.items()} == {
        "workspaces": (0, 0, 0), "users": (0, 1, 1), "billing_profiles": (0, 0, 0), "companies": (0, 0, 0),
        "contacts": (1, 1, 1), "deals": (0, 1, 1)}
    assert app.stored("contacts") == [_contact("c1", "Ann", "Lee-Ray", ANN, None, True, T1)]
    assert [u["user_id"] for u in app.stored("users")] == ["u1", "u3"]
    assert app.stored("deals") == []
    (request,) = app.inbox.pending()
    assert (request["request_type"], request["workspace_id"], request["identity_kind"], request["identity_value"],
            request["requested_by"]) == ("erasure", "ws_a", "email", "bo@example.com", "crm_app:account_closed")

    again = app.sync()  # nothing left to remove, nothing filed twice
    assert {t: (c.read, c.deleted) for t, c in again.items() if c.read or c.deleted} == {}
    assert len(app.inbox.all()) == 1
    assert [c["contact_id"] for c in app.stored("contacts")] == ["c1"]
