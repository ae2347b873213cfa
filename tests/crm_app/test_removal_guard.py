"""The guard against mass removal, against SQLite and a real PostgreSQL: when an app table reads (nearly)
empty, the key comparison would take every mirrored row for deleted and file an erasure for every user; the
guard refuses those removals (the mirror and the request inbox untouched, the rest of the sync loaded, an error
naming tables and counts only), lets a legitimate deletion below its share through, and lets an operator allow
the refused removals for one sync (in plain dlt and in Dagster, where the refusal fails the run and marks the
table's materialisation)."""

from __future__ import annotations

import datetime as dt

import pytest
from pipelines.crm_app import RemovalGuard, RemovalsRefused
from pipelines.crm_app import app_schema as app_tables
from pipelines.crm_app.removed import Refusal
from resources.crm_app import CrmAppResource
from tests.crm_app.conftest import AppPlatform, run_sync_job

T0 = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.timezone.utc)
T1 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.timezone.utc)
USERS, CONTACTS = 12, 20


def _seed(app: AppPlatform) -> None:
    """One workspace, 12 users and 20 contacts (both over the guard's 10-row minimum)."""
    times = {"created_at": T0, "updated_at": T0}
    app.execute(app_tables.workspaces.insert(), [{"workspace_id": "ws_a", "name": "Alpha", "plan": "starter",
                                                  "seats": 5, "default_region": "GB", **times}])
    app.execute(app_tables.users.insert(), [
        {"user_id": f"u{i:02d}", "workspace_id": "ws_a", "full_name": f"User {i}", "email": f"user{i}@example.com",
         "phone": None, "role": "member", "last_login_at": None, **times} for i in range(USERS)])
    app.execute(app_tables.contacts.insert(), [
        {"contact_id": f"c{i:02d}", "workspace_id": "ws_a", "company_id": None, "first_name": "Pat",
         "last_name": f"Number {i}", "email": f"contact{i}@example.com", "phone": None, "email_opt_in": True,
         **times} for i in range(CONTACTS)])


def _empty_users_and_contacts(app: AppPlatform) -> None:
    """What a fault looks like from here (a truncated replica, a lost grant): the tables read empty. The
    workspace's plan changes meanwhile, a change the sync must still load."""
    app.execute(app_tables.contacts.delete())
    app.execute(app_tables.users.delete())
    workspaces = app_tables.workspaces
    app.execute(workspaces.update().values(plan="growth", updated_at=T1))


def _held(app: AppPlatform) -> dict[str, int]:
    return {t: len(app.stored(t)) for t in ("users", "contacts")}


def test_the_guard_refuses_more_than_half_of_a_table_and_no_fewer_than_its_minimum() -> None:
    guard = RemovalGuard()
    assert (guard.max_share, guard.min_rows) == (0.5, 10)
    assert guard.check("contacts", 20, 10) is None  # exactly half may go
    assert guard.check("contacts", 20, 11) == Refusal("contacts", 20, 11, 0.5)
    assert guard.check("contacts", 9, 9) is None  # under the minimum, the guard stands aside
    assert guard.check("contacts", 10, 10) == Refusal("contacts", 10, 10, 0.5)
    assert RemovalGuard.allowing("users, contacts").check("contacts", 20, 20) is None
    assert RemovalGuard.allowing("users").check("contacts", 20, 20) == Refusal("contacts", 20, 20, 0.5)
    assert RemovalGuard.allowing("*").check("deals", 1000, 1000) is None
    assert RemovalGuard(max_share=0.1).check("deals", 100, 11) == Refusal("deals", 100, 11, 0.1)
    with pytest.raises(ValueError):
        RemovalGuard(max_share=1.5)


def test_tables_read_empty_are_refused_and_nothing_is_removed_or_filed(app: AppPlatform) -> None:
    _seed(app)
    app.sync()
    _empty_users_and_contacts(app)
    with pytest.raises(RemovalsRefused) as refused:
        app.sync()
    message = str(refused.value)
    assert message.startswith("refused to remove rows deleted in the app: users: 12 of its 12 mirrored rows (100%) "
                              "are no longer in the app, more than the 50% a sync may remove; contacts: 20 of its "
                              "20 mirrored rows (100%) are no longer in the app, more than the 50% a sync may "
                              "remove. Nothing was removed")
    assert "--allow-removals users,contacts" in message
    assert "@example.com" not in message and "Number" not in message
    assert [(r.table, r.mirrored, r.missing) for r in refused.value.refusals] == [("users", 12, 12),
                                                                                   ("contacts", 20, 20)]
    assert _held(app) == {"users": USERS, "contacts": CONTACTS}
    assert app.inbox.all() == []
    assert [w["plan"] for w in app.stored("workspaces")] == ["growth"]  # the rest of the sync was loaded

    with pytest.raises(RemovalsRefused):  # and so it stays, sync after sync, until someone looks
        app.sync()
    assert _held(app) == {"users": USERS, "contacts": CONTACTS} and app.inbox.all() == []


def test_a_deletion_within_the_share_goes_through(app: AppPlatform) -> None:
    _seed(app)
    app.sync()
    contacts, users = app_tables.contacts, app_tables.users
    app.execute(contacts.delete().where(contacts.c.contact_id.in_([f"c{i:02d}" for i in range(10)])))
    app.execute(users.delete().where(users.c.user_id.in_(["u00", "u01"])))
    counts = app.sync()
    assert {t: (counts[t].hard_deleted, counts[t].removals_refused) for t in ("users", "contacts")} == {
        "users": (2, 0), "contacts": (10, 0)}
    assert _held(app) == {"users": USERS - 2, "contacts": CONTACTS - 10}
    assert sorted(r["identity_value"] for r in app.inbox.pending()) == ["user0@example.com", "user1@example.com"]


def test_an_operator_allows_the_refused_removals_for_one_sync(app: AppPlatform) -> None:
    _seed(app)
    app.sync()
    _empty_users_and_contacts(app)
    with pytest.raises(RemovalsRefused):
        app.sync()
    with pytest.raises(RemovalsRefused) as refused:  # one table allowed: the other stays refused
        app.sync(RemovalGuard.allowing("contacts"))
    assert [(r.table, r.missing) for r in refused.value.refusals] == [("users", USERS)]
    assert _held(app) == {"users": USERS, "contacts": 0}
    assert app.inbox.all() == []
    counts = app.sync(RemovalGuard.allowing("users"))
    assert counts["users"].hard_deleted == USERS
    assert _held(app) == {"users": 0, "contacts": 0}
    assert len(app.inbox.pending()) == USERS  # every account closed: one erasure each


def _run(app: AppPlatform, **settings):
    return run_sync_job(app.platform, CrmAppResource(database_url=app.url,
                                                     workspaces_path=str(app.platform.workspaces_path), **settings))


def _guard_metadata(result) -> dict[str, tuple]:
    return {e.asset_key.path[-1]: (e.materialization.metadata["removal_guard"].value,
                                   e.materialization.metadata["rows_removal_refused"].value)
            for e in result.get_asset_materialization_events() if e.asset_key.path[-1] in ("users", "contacts")}


@pytest.mark.parametrize("app_url", ["sqlite"], indirect=True)
def test_in_dagster_a_refusal_fails_the_run_and_the_resource_setting_allows_it(app: AppPlatform) -> None:
    _seed(app)
    assert _run(app).success
    _empty_users_and_contacts(app)
    refused = _run(app)
    assert not refused.success
    assert _guard_metadata(refused) == {"users": ("refused: needs attention", USERS),
                                        "contacts": ("refused: needs attention", CONTACTS)}
    (failure,) = [e for e in refused.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "users: 12 of its 12 mirrored rows" in failure.step_failure_data.user_failure_data.description
    assert _held(app) == {"users": USERS, "contacts": CONTACTS} and app.inbox.all() == []

    allowed = _run(app, allow_removals="users,contacts")
    assert allowed.success
    assert _guard_metadata(allowed) == {"users": ("passed", 0), "contacts": ("passed", 0)}
    assert _held(app) == {"users": 0, "contacts": 0}
    assert len(app.inbox.pending()) == USERS


@pytest.mark.parametrize("app_url", ["sqlite"], indirect=True)
def test_the_command_line_refuses_with_exit_code_3_and_allows_with_its_flag(app: AppPlatform, monkeypatch,
                                                                            capsys) -> None:
    from pipelines.crm_app.__main__ import main

    monkeypatch.setenv("GTG_DATA_DIR", str(app.root))
    monkeypatch.setenv("GTG_CRM_APP_DATABASE_URL", app.url)
    monkeypatch.delenv("GTG_CRM_APP_ALLOW_REMOVALS", raising=False)
    _seed(app)
    app.sync()
    _empty_users_and_contacts(app)
    capsys.readouterr()
    assert main([]) == 3
    err = capsys.readouterr().err
    assert err.startswith("refused: refused to remove rows deleted in the app: users: 12 of its 12 mirrored rows")
    assert "@example.com" not in err
    assert _held(app) == {"users": USERS, "contacts": CONTACTS} and app.inbox.all() == []
    assert main(["--allow-removals", "users,contacts"]) == 0
    assert _held(app) == {"users": 0, "contacts": 0}
    assert len(app.inbox.pending()) == USERS
