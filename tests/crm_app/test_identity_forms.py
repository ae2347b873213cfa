"""One person, one form: however an identifier was typed (a phone national in the app and international in an
uploaded list, an e-mail with decomposed accents, any separators in a request), every source stores and indexes
it in one form (phones in E.164 read in the workspace's region; e-mails NFC, trimmed, lower-cased), so an erasure
reaches every copy and two sources' rows of one person share a blind index."""

from __future__ import annotations

import datetime as dt

import duckdb
import phonenumbers
import pyarrow as pa
from hypothesis import given, settings, strategies as st

from pipelines.contact_uploads import load_uploads
from pipelines.contact_uploads.settings import DATASET_NAME as UPLOADS
from pipelines.crm_app import app_schema
from pipelines.crm_app.settings import DATASET_NAME as APP
from pipelines.phones import APP_DATASET, canonical_phone, canonical_phones
from pipelines.privacy.audit import AuditLog
from pipelines.privacy.dsr import process_pending
from pipelines.privacy.requests import Request, normalise_identities, normalise_identity
from tests.conftest import found_in_files
from tests.crm_app.conftest import AppPlatform

REGIONS = ["US", "GB", "DE", "FR", "JP", "BR", "IN", "AU", "ES", "IT", "MX", "ZA", "SE", "NL", "CA"]
FORMATS = [phonenumbers.PhoneNumberFormat.E164, phonenumbers.PhoneNumberFormat.INTERNATIONAL,
           phonenumbers.PhoneNumberFormat.NATIONAL, phonenumbers.PhoneNumberFormat.RFC3966]


@settings(max_examples=300, deadline=None)
@given(region=st.sampled_from(REGIONS), kind=st.sampled_from([phonenumbers.PhoneNumberType.MOBILE,
                                                                phonenumbers.PhoneNumberType.FIXED_LINE]),
       style=st.sampled_from(FORMATS), separator=st.sampled_from(["", " ", "-", ".", " - "]),
       padding=st.sampled_from(["", " ", "\t"]))
def test_every_way_of_typing_a_number_gives_one_form(region, kind, style, separator, padding) -> None:
    number = phonenumbers.example_number_for_type(region, kind)
    typed = phonenumbers.format_number(number, style).replace(" ", separator).replace("tel:", "")
    expected = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    assert canonical_phone(padding + typed + padding, region) == expected
    assert canonical_phone(expected, None) == expected  # an E.164 number needs no region
    assert canonical_phone(canonical_phone(typed, region), region) == expected


@given(st.text(alphabet="0123456789+-() .x", max_size=24), st.sampled_from([None, *REGIONS]))
def test_any_text_is_kept_once_canonical(value: str, region: str | None) -> None:
    """Unreadable values keep their digits (still indexed, never dropped), and the form is stable."""
    once = canonical_phone(value, region)
    assert once is None or canonical_phone(once, region) == once
    if once is None:
        assert not any(c.isdigit() or c == "+" for c in value)


def test_each_row_is_read_in_its_own_workspaces_region() -> None:
    out = canonical_phones(pa.array(["ws_us", "ws_gb", "ws_us", "ws_none", "ws_us"]),
                           pa.array(["(415) 555-0123", "020 7946 0018", None, "020 7946 0018", "(415) 555-0123"]),
                           {"ws_us": "US", "ws_gb": "GB"})
    assert out.to_pylist() == ["+14155550123", "+442079460018", None, "02079460018", "+14155550123"]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=16)), max_size=8), st.sampled_from(["email", "phone"]))
def test_rows_are_normalised_by_the_same_code_as_requests(values: list[str | None], kind: str) -> None:
    """Arrow's own lower-casing follows a newer Unicode than Python's (U+1DF7C, for one): rows normalised with
    it would miss requests normalised with Python."""
    assert normalise_identities(kind, pa.array(values, pa.string())).to_pylist() == [
        None if v is None else normalise_identity(kind, v) for v in values]


def test_the_region_comes_from_the_app_databases_mirror() -> None:
    assert APP_DATASET == APP


T0 = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)


def _app_with_users(app: AppPlatform, region: str, users: list[tuple[str, str, str | None, str | None]]) -> None:
    """One workspace of `region` with users (id, full name, e-mail, phone), synced."""
    times = {"created_at": T0, "updated_at": T0}
    app.execute(app_schema.workspaces.insert(), [{"workspace_id": "ws_a", "name": "A", "plan": "growth", "seats": 3,
                                                  "default_region": region, **times}])
    app.execute(app_schema.users.insert(), [
        {"user_id": uid, "workspace_id": "ws_a", "full_name": name, "email": email, "phone": phone,
         "role": "owner" if i == 0 else "member", **times} for i, (uid, name, email, phone) in enumerate(users)])
    app.sync()


def _upload(app: AppPlatform, data: bytes) -> int:
    landed = app.root / "landing" / "contacts" / "ws_a" / "list.csv"
    landed.parent.mkdir(parents=True, exist_ok=True)
    landed.write_bytes(data)
    with app.platform.keyring() as cipher:
        report = load_uploads(app.root / "landing" / "contacts", cipher, warehouse_path=app.platform.warehouse,
                              dlt_dir=app.platform.dlt_dir, work_dir=app.platform.work_dir,
                              known_workspaces=app.platform.known_workspaces())
    assert report.rows_quarantined == 0
    return report.contacts_loaded


def _process(app: AppPlatform, *requests: Request) -> dict[str, int]:
    for request in requests:
        app.inbox.submit(request)
    with app.platform.keyring() as cipher, duckdb.connect(str(app.platform.warehouse)) as con:
        return process_pending(con, cipher, app.inbox, AuditLog.of(app.root / "privacy" / "audit.jsonl", cipher),
                               exports_dir=app.root / "exports", landing_urls={}).rows_by_table


def test_an_erasure_by_phone_typed_any_way_reaches_the_app_user_and_the_uploaded_contact(app: AppPlatform) -> None:
    _app_with_users(app, "US", [("u1", "Ann Lee", "ann@example.com", "(415) 555-0123"),
                                ("u2", "Bo Chen", "bo@example.com", "(415) 555-0199")])
    assert _upload(app, b"Name,Mobile Phone\nAnn Lee,+1 415.555.0123\nCy Diaz,415 555 0142\n") == 2
    assert sorted(r["phone"] for r in app.stored("users")) == ["+14155550123", "+14155550199"]
    shared = app.platform.query(f"SELECT count(*) FROM {APP}.users u JOIN {UPLOADS}.uploaded_contacts c "
                                "ON u.phone_bidx = c.phone_bidx")
    assert shared == [(1,)]  # Ann, typed two ways, is one blind index

    assert _process(app, Request("erasure", "ws_a", "phone", "415-555-0123")) == {
        f"{UPLOADS}.uploaded_contacts": 1, f"{APP}.users": 1}
    assert sorted(r["full_name"] for r in app.stored("users")) == ["Bo Chen"]
    assert found_in_files(app.root, {"14155550123", "415) 555-0123", "415.555.0123", "ann@example.com"}) == {}


def test_an_erasure_by_email_typed_with_decomposed_accents_reaches_every_copy(app: AppPlatform) -> None:
    """`zoë` composed (NFC, as email-validator stores uploads) and decomposed (`zoe` + U+0308, as some
    keyboards and exports produce) is one address."""
    _app_with_users(app, "DE", [("u1", "Zoë Weiß", "Zoe\u0308@Example.com", None)])
    assert _upload(app, "Name,Email\nZoë Weiß,ZOË@example.com\n".encode()) == 1
    assert [r["email"] for r in app.stored("users")] == ["zo\u00eb@example.com"]
    assert _process(app, Request("erasure", "ws_a", "email", " zoe\u0308@EXAMPLE.com")) == {
        f"{UPLOADS}.uploaded_contacts": 1, f"{APP}.users": 1}


def test_a_corrected_email_or_phone_is_stored_in_the_one_form_and_found_by_later_requests(app: AppPlatform) -> None:
    _app_with_users(app, "US", [("u1", "Ann Lee", "ann@example.com", "+14155550123"),
                                ("u2", "Bo Chen", "bo@example.com", None)])
    _process(app, Request("correction", "ws_a", "email", "ann@example.com", field="user.contact.email",
                          new_value=" Ann.New@Example.COM"),
             Request("correction", "ws_a", "email", "ann@example.com", field="user.contact.phone_number",
                     new_value="(415) 555-0177"))
    assert [(r["email"], r["phone"]) for r in app.stored("users") if r["user_id"] == "u1"] == [
        ("ann.new@example.com", "+14155550177")]

    assert _process(app, Request("erasure", "ws_a", "phone", "415.555.0177")) == {f"{APP}.users": 1}
    assert [r["user_id"] for r in app.stored("users")] == ["u2"]
