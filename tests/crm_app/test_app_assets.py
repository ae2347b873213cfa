"""The CRM app source in Dagster: one job materialises every app table with its counts, and the checks pass
on the sandbox's generated app database; a sandbox round changes it and the next run shows the changes."""

from __future__ import annotations

from pipelines.crm_app import sandbox as app_sandbox
from resources.crm_app import CrmAppResource
from tests.conftest import Platform
from tests.crm_app.conftest import run_sync_job as _run


def _counts(result) -> dict[str, tuple]:
    return {e.asset_key.path[-1]: tuple(e.materialization.metadata[k].value for k in ("rows_read", "rows_deleted"))
            for e in result.get_asset_materialization_events()}


def test_the_sandbox_app_database_syncs_with_counts_and_passing_checks(platform: Platform) -> None:
    app = CrmAppResource(sandbox=True, sandbox_path=str(platform.root / "crm_app" / "app.sqlite"),
                         workspaces_path=str(platform.workspaces_path))
    first = _run(platform, app)
    assert first.success
    # 5 workspaces of 6 users (one billing profile each), 8 companies, 40 contacts, 12 deals
    assert _counts(first) == {"workspaces": (5, 0), "users": (30, 0), "billing_profiles": (5, 0),
                              "companies": (40, 0), "contacts": (200, 0), "deals": (60, 0)}
    checks = first.get_asset_check_evaluations()
    assert len(checks) == 13 and all(c.passed for c in checks)
    assert platform.known_workspaces() == set(app_sandbox.WORKSPACES)

    changes = app_sandbox.advance(app.url())
    assert changes == {"contacts_added": 25, "contacts_updated": 15, "contacts_deleted": 10, "contacts_purged": 5,
                       "users_closed": 1}
    second = _run(platform, app)
    assert second.success
    assert platform.query("SELECT count(*) FROM raw_crm_app.contacts") == [(200 + 25 - 10 - 5,)]
    assert platform.query("SELECT count(*) FROM raw_crm_app.users") == [(29,)]
    users = next(e for e in second.get_asset_materialization_events() if e.asset_key.path[-1] == "users")
    assert users.materialization.metadata["erasure_requests_filed"].value == 1
    assert _counts(second)["contacts"][1] == 15 and _counts(second)["users"][1] == 1
    contacts = next(e for e in second.get_asset_materialization_events() if e.asset_key.path[-1] == "contacts")
    assert contacts.materialization.metadata["rows_hard_deleted"].value == 5


def test_each_table_carries_its_row_count_and_documented_columns(platform: Platform) -> None:
    """Through the shared `load`: every materialisation says how many rows its table holds (also a table the run
    loaded nothing into), and the declared columns are DuckDB comments."""
    app = CrmAppResource(sandbox=True, sandbox_path=str(platform.root / "crm_app" / "app.sqlite"),
                         workspaces_path=str(platform.workspaces_path))

    def row_counts(result) -> dict[str, int]:
        return {e.asset_key.path[-1]: e.materialization.metadata["dagster/row_count"].value
                for e in result.get_asset_materialization_events()}

    assert row_counts(_run(platform, app)) == {"workspaces": 5, "users": 30, "billing_profiles": 5, "companies": 40,
                                               "contacts": 200, "deals": 60}
    app_sandbox.advance(app.url())  # contacts +25, 10 soft-deleted, 5 deleted outright; one user closed; workspaces, companies, deals unchanged
    assert row_counts(_run(platform, app)) == {"workspaces": 5, "users": 29, "billing_profiles": 5, "companies": 40,
                                               "contacts": 210, "deals": 60}
    comments = dict(platform.query("SELECT column_name, comment FROM duckdb_columns() WHERE schema_name = "
                                   "'raw_crm_app' AND table_name = 'contacts' AND comment IS NOT NULL"))
    assert comments == {
        "subject_ref": "Reference of the person (email, phone) whose key encrypts the row.",
        "first_name": "Personal data (user.name), stored encrypted.",
        "last_name": "Personal data (user.name), stored encrypted.",
        "email": "Personal data (user.contact.email), stored encrypted.",
        "email_bidx": "Blind index (keyed hash) of email: joins and counts without the value.",
        "phone": "Personal data (user.contact.phone_number), stored encrypted.",
        "phone_bidx": "Blind index (keyed hash) of phone: joins and counts without the value.",
    }
