"""The `contacts` and `workspaces` models over real loads of every source of contacts: the CRM app database,
an uploaded Google export and a synced Gmail address book. The same person from several sources is one row
naming each source; a phone-only record joins the person holding that number with an e-mail address, however each typed it;
neither model holds a readable personal value."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import duckdb
import phonenumbers
import sqlalchemy as sa

from assets.analytics import MODELS, PERSONAL_COLUMNS
from assets.sql_models import build, build_order, readable_personal_data
from pipelines.catalog import DECLARED_TABLES
from pipelines.contact_uploads import load_uploads
from pipelines.contact_uploads.sandbox import google_csv
from pipelines.crm_app import app_schema
from tests.conftest import Platform
from tests.crm_app.conftest import AppPlatform
from tests.mail.conftest import GMAIL, mail  # noqa: F401 - mail: the fixture

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)


def _expected_people(records: list[tuple[str | None, str | None]]) -> int:
    """How many people (e-mail, phone) records make: one per e-mail address; a phone-only record is the person
    whose record holds that number with an address, or someone of its own."""
    emails = {e for e, _ in records if e}
    phones_with_email = {p for e, p in records if e and p}
    return len(emails) + len({p for e, p in records if not e and p not in phones_with_email})


def test_the_contacts_model_is_one_row_per_person_across_sources(mail, tmp_path) -> None:
    mail.sync(GMAIL)
    platform = Platform(mail.root)
    gmail = [(c.emails[0] if c.emails else None, c.phones[0][0] if c.phones else None)
             for c in sorted(mail.accounts[0].contacts.values(), key=lambda c: c.id)]
    phone_uses = Counter(p for _, p in gmail if p)
    a_email, a_phone = next((e, p) for e, p in gmail if e and p)
    b_email, b_phone = next((e, p) for e, p in gmail if e and p and phone_uses[p] == 1 and e != a_email)

    b_national = phonenumbers.format_number(phonenumbers.parse(b_phone), phonenumbers.PhoneNumberFormat.NATIONAL)
    assert b_national != b_phone  # the app holds it as typed in the US; Gmail in E.164

    app = AppPlatform(platform, f"sqlite:///{tmp_path / 'app.sqlite'}")
    engine = sa.create_engine(app.url)
    app_schema.metadata.create_all(engine)
    engine.dispose()
    times = {"created_at": T0, "updated_at": T0}
    app.execute(app_schema.workspaces.insert(), [{"workspace_id": "ws_0001", "name": "One", "plan": "growth",
                                                  "seats": 12, "default_region": "US", **times}])
    app.execute(app_schema.contacts.insert(), [
        {"contact_id": "c1", "workspace_id": "ws_0001", "email": a_email.upper(), "phone": None,
         "email_opt_in": True, **times},
        {"contact_id": "c2", "workspace_id": "ws_0001", "email": None, "phone": b_national, "email_opt_in": False,
         **times},
        {"contact_id": "c3", "workspace_id": "ws_0001", "email": None, "phone": "+15550000001",
         "email_opt_in": False, **times}])
    app.sync()
    path = mail.root / "landing" / "contacts" / "ws_0001" / "google.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(google_csv([("A", "Person", a_email, ""), ("New", "Person", "new.person@example.com", "")]))
    with platform.keyring() as cipher:
        report = load_uploads(path.parent.parent, cipher, warehouse_path=platform.warehouse, dlt_dir=platform.dlt_dir,
                              work_dir=platform.work_dir, known_workspaces=platform.known_workspaces())
    assert report.contacts_loaded == 2

    with duckdb.connect(str(platform.warehouse)) as con:
        for model in build_order(MODELS):
            build(con, model, sources=DECLARED_TABLES)
        readable = {name: readable_personal_data(con, MODELS[f"analytics.{name}"], PERSONAL_COLUMNS)
                    for name in ("contacts", "workspaces", "contact_lists_daily")}
    assert readable == {"contacts": {}, "workspaces": {}, "contact_lists_daily": {}}

    with platform.keyring() as cipher:
        def key(value: str, kind: str) -> bytes:
            return cipher.blind_index("ws_0001", [value], kind=kind)[0].as_py()

        wanted = {"a": key(a_email, "user.contact.email"), "b": key(b_email, "user.contact.email"),
                  "c3": key("+15550000001", "user.contact.phone_number"),
                  "new": key("new.person@example.com", "user.contact.email")}
    found = {name: mail.query("SELECT sources, source_count, has_email, has_phone, email_opt_in "
                              "FROM analytics.contacts WHERE workspace_id = 'ws_0001' AND contact_key = ?", [k])
             for name, k in wanted.items()}
    assert found == {"a": [("app,gmail,upload", 3, True, True, True)], "b": [("app,gmail", 2, True, True, False)],
                     "c3": [("app", 1, False, True, False)], "new": [("upload", 1, True, False, None)]}
    records = gmail + [(a_email, None), (None, b_phone), (None, "+15550000001"), ("new.person@example.com", None)]
    assert mail.query("SELECT count(*), count(DISTINCT contact_key) FROM analytics.contacts "
                      "WHERE workspace_id = 'ws_0001'") == [(_expected_people(records),) * 2]
    assert mail.query("SELECT workspace_id, plan, seats, created_date FROM analytics.workspaces "
                      "WHERE plan IS NOT NULL") == [("ws_0001", "growth", 12, T0.date())]
    assert sorted(mail.query("SELECT provider, connections, contacts FROM analytics.contact_lists_daily "
                             "WHERE workspace_id = 'ws_0001'")) == [
        ("app", 0, 3), ("gmail", 1, len(gmail)), ("upload", 0, 2)]
