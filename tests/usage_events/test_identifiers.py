"""Identifiers are stored in the form requests look them up by: whitespace around an opaque id (`" u1"`), which
privacy requests strip (`normalise_identity`), is stripped from the events too, so a request for `u1` reaches
an event the tracker sent as `" u1"` (and the reverse)."""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.privacy.requests import Request, normalise_identity
from pipelines.privacy.subjects import request_kind
from tests.conftest import END_DATE, Platform
from tests.privacy.test_landed import RULE, _at, _restored, _sweep
from tests.privacy.test_requests import _process

WS = "ws_a"
IDS = ("user_id", "anonymous_id", "device_id")
_EXAMPLES = os.environ.get("GTG_FUZZ_EXAMPLES")
# Characters Python's str.strip() removes (what normalise_identity strips): ASCII, Latin-1 and Unicode spaces.
_SPACE = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2005\u200a\u2028\u2029\u202f\u205f\u3000"
_padding = st.text(alphabet=_SPACE, max_size=3)
_core = st.sampled_from(["u1", "u2", "a b", "\u200bz", "x\u00a0y"])


def _padded(draw) -> str:
    return draw(_padding) + draw(_core) + draw(_padding)


@st.composite
def _identities(draw) -> list[dict]:
    """Events of one workspace whose identifiers are a few core ids with random whitespace around them."""
    events = []
    for i in range(draw(st.integers(1, 12))):
        event = {"event_id": f"00000000-0000-4000-8000-{i:012d}", "workspace_id": WS, "event_type": "click",
                 "occurred_at": f"{END_DATE.isoformat()}T10:00:00Z", "consent": {"analytics": True, "ads": False}}
        for column in IDS:
            if draw(st.booleans()):
                event[column] = _padded(draw)
        if "user_id" not in event and "anonymous_id" not in event:
            event["anonymous_id"] = _padded(draw)
        events.append(event)
    return events


def _land(platform: Platform, events: list[dict], name: str = "events.ndjson") -> None:
    day = platform.landing / f"dt={END_DATE.isoformat()}"
    day.mkdir(parents=True, exist_ok=True)
    (day / name).write_text("".join(json.dumps(e) + "\n" for e in events))


def _request_index(cipher, kind: str, value: str) -> bytes:
    """The blind index a request naming `value` looks rows up by (as `pipelines.privacy.dsr` computes it)."""
    return cipher.blind_index(WS, [normalise_identity(kind, value)], kind=request_kind(kind)).to_pylist()[0]


@settings(max_examples=int(_EXAMPLES or 8), deadline=None, database=None, derandomize=_EXAMPLES is None,
          suppress_health_check=[HealthCheck.too_slow])
@given(_identities(), st.data())
def test_rows_and_requests_agree_on_every_identifier(events: list[dict], data) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        platform = Platform(Path(tmp) / "data")
        platform.register_workspaces(WS)
        _land(platform, events)
        report = platform.ingest()
        assert (report.events_loaded, report.lines_quarantined) == (len(events), 0)
        stored = {r[0]: r[1:] for r in platform.query(
            "SELECT event_id, subject_ref, " + ", ".join(f"{c}, {c}_bidx" for c in IDS) + " FROM raw_events.usage_events")}
        with platform.keyring() as cipher:
            for event in events:
                ref, *columns = stored[event["event_id"]]
                for column, (ciphertext, bidx) in zip(IDS, zip(columns[::2], columns[1::2])):
                    if column not in event:
                        assert (ciphertext, bidx) == (None, None)
                        continue
                    # A request naming the same id with other padding finds the row, and the row holds the form
                    # the normaliser gives.
                    asked = data.draw(_padding) + event[column].strip(_SPACE) + data.draw(_padding)
                    assert bidx == _request_index(cipher, column, asked)
                    plain = cipher.decrypt(WS, [ciphertext], subject_refs=[ref],
                                           context=f"usage_events.{column}").to_pylist()[0]
                    assert plain == normalise_identity(column, event[column])
                subject = next(c for c in IDS if c in event)
                assert ref == _request_index(cipher, subject, event[subject])


def test_whitespace_only_identifier_names_nobody(platform) -> None:
    platform.register_workspaces(WS)
    base = {"workspace_id": WS, "event_type": "click", "occurred_at": f"{END_DATE.isoformat()}T10:00:00Z",
            "consent": {"analytics": True, "ads": False}}
    _land(platform, [{**base, "event_id": "00000000-0000-4000-8000-000000000001", "user_id": " \t",
                      "anonymous_id": " c1 "},
                     {**base, "event_id": "00000000-0000-4000-8000-000000000002", "anonymous_id": "\u3000"}])
    assert platform.ingest().events_loaded == 2
    rows = platform.query("SELECT event_id, user_id IS NULL, user_id_bidx IS NULL, anonymous_id IS NULL, "
                          "subject_ref IS NULL FROM raw_events.usage_events ORDER BY event_id")
    assert rows == [("00000000-0000-4000-8000-000000000001", True, True, False, False),
                    ("00000000-0000-4000-8000-000000000002", True, True, True, True)]
    with platform.keyring() as cipher:
        assert platform.query("SELECT subject_ref FROM raw_events.usage_events ORDER BY event_id")[0][0] == \
            _request_index(cipher, "anonymous_id", "c1")


@pytest.mark.parametrize("archived", [False, True], ids=["landed", "archived"])
def test_erasure_reaches_events_sent_with_a_padded_id(platform, archived: bool) -> None:
    """An erasure for `u1` removes the events, the quarantined line and the landed copies of lines sent with
    `u1` padded; once the lifecycle has archived the file, the archived lines become unreadable instead."""
    platform.register_workspaces(WS)
    base = {"workspace_id": WS, "event_type": "click", "occurred_at": f"{END_DATE.isoformat()}T10:00:00Z",
            "consent": {"analytics": True, "ads": False}}
    mine = [{**base, "event_id": f"00000000-0000-4000-8000-00000000000{i}", "user_id": v}
            for i, v in enumerate([" u1", "u1\t", "\u00a0u1 ", "u1"])]
    other = json.dumps({**base, "event_id": "00000000-0000-4000-8000-000000000009", "user_id": " u2 "})
    broken = '{"workspace_id": "ws_a", "user_id": " u1 ", "event_type": "click"'  # quarantined, attributed to u1
    landed = platform.landing / f"dt={END_DATE.isoformat()}" / "events.ndjson"
    landed.parent.mkdir(parents=True)
    landed.write_text("".join(json.dumps(e) + "\n" for e in mine) + other + "\n" + broken + "\n")
    report = platform.ingest()
    assert (report.events_loaded, report.lines_quarantined) == (5, 1)
    if archived:
        _sweep(platform, _at(END_DATE + dt.timedelta(days=RULE.clear_days + 1)))  # past the replay window
        assert [data.count(b"u1") for data in _restored(platform).values()] == [5]

    inbox, (rid,), done = _process(platform, Request("erasure", WS, "user_id", "u1"))

    assert inbox.get(rid)["status"] == "completed"
    assert done.rows_by_table == {"raw_events.usage_events": 4, "raw_events.usage_events_quarantine": 1}
    assert platform.query("SELECT count(*) FROM raw_events.usage_events_quarantine") == [(0,)]
    assert platform.query("SELECT event_id FROM raw_events.usage_events") == [("00000000-0000-4000-8000-000000000009",)]
    # Only the other person's line is left, in the landed file or the archive.
    left = [line for data in _restored(platform).values() for line in data.splitlines()]
    left += landed.read_bytes().splitlines() if landed.exists() else []
    assert left == [other.encode()]
