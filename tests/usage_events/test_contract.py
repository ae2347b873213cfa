"""The SQL validator gives, line by line, the same verdict as the reference JSON Schema validator."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from jsonschema import Draft202012Validator

from pipelines.sandbox.events import generate_events
from pipelines.usage_events.contract import FORMAT_PATTERNS, ContractError, load_contract
from pipelines.usage_events.settings import EARLIEST_EVENT, MAX_CLOCK_SKEW_DAYS
from pipelines.usage_events.validation import validation_select

DAY = dt.date(2026, 11, 24)


def _reference_valid(line: str) -> bool:
    """jsonschema (with format checks) plus the plausibility rule of the pipeline."""
    try:
        value = json.loads(line)
    except ValueError:
        return False
    validator = Draft202012Validator(load_contract().schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    if not validator.is_valid(value):
        return False
    occurred = dt.datetime.fromisoformat(value["occurred_at"].replace("Z", "+00:00").replace("z", "+00:00"))
    latest = dt.datetime.combine(DAY + dt.timedelta(days=MAX_CLOCK_SKEW_DAYS + 1), dt.time(), dt.timezone.utc)
    return dt.datetime.fromisoformat(EARLIEST_EVENT).replace(tzinfo=dt.timezone.utc) <= occurred < latest


def _sql_reasons(lines: list[str]) -> list[str | None]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    chunk = pa.table({  # noqa: F841 - read by DuckDB
        "file_id": pa.array([0] * len(lines), pa.int32()),
        "received_date": pa.array([DAY] * len(lines), pa.date32()),
        "line_no": pa.array(range(1, len(lines) + 1), pa.int64()),
        "line": pa.array(lines, pa.large_string()),
        "defect": pa.nulls(len(lines), pa.string()),
        "defect_detail": pa.nulls(len(lines), pa.string()),
    })
    # Every workspace named is known here: this compares the contract's rules alone.
    con.execute("CREATE TABLE known AS SELECT DISTINCT json_extract_string(line, '$.workspace_id') AS workspace_id "
                "FROM chunk WHERE json_valid(line) AND json_type(line) = 'OBJECT'")
    sql = validation_select(load_contract(), "chunk", EARLIEST_EVENT, MAX_CLOCK_SKEW_DAYS, "known")
    return [r[0] for r in con.execute(f"SELECT reason FROM ({sql}) ORDER BY line_no").fetchall()]


EDGE_CASES = [
    '{"event_id":"6f1c2a52-1b2c-4d3e-8f40-0a1b2c3d4e5f","workspace_id":"ws_1","event_type":"click",'
    '"occurred_at":"2026-11-24T10:00:00Z","anonymous_id":"a","consent":{"analytics":true,"ads":true}}',
]


def _variants() -> list[str]:
    base = json.loads(EDGE_CASES[0])
    changes = [
        {"user_id": None}, {"user_id": ""}, {"user_id": "x" * 129}, {"anonymous_id": None},
        {"anonymous_id": None, "user_id": "u"}, {"ip": "01.2.3.4"}, {"ip": "fe80::1%eth0"}, {"ip": "2001:db8::1"},
        {"ip": "::ffff:1.2.3.4"}, {"ip": None}, {"ip": ["1.2.3.4"]}, {"occurred_at": "2026-11-24T10:00:00"},
        {"occurred_at": "2026-11-24t10:00:00.123456-05:30"}, {"occurred_at": "2026-11-24T24:00:00Z"},
        {"occurred_at": "2026-11-26T00:00:00Z"}, {"occurred_at": "2026-11-25T23:59:59Z"},
        {"occurred_at": "1999-12-31T23:59:59Z"}, {"event_type": "Page View"}, {"event_type": "custom_thing_1"},
        {"event_id": "6F1C2A52-1B2C-4D3E-8F40-0A1B2C3D4E5F"}, {"workspace_id": "ws/1"}, {"properties": []},
        {"properties": {"a": [1, {"b": None}]}}, {"consent": {"analytics": True}},
        {"consent": {"analytics": True, "ads": False, "x": 1}}, {"consent": None}, {"extra": 1},
        {"consent": "yes"}, {"consent": "{not json"}, {"consent": 5}, {"properties": "{\"a\": 1}"},
        {"url": 5}, {"referrer": "x" * 4097}, {"user_agent": "é" * 2048}, {"user_agent": "é" * 2049},
        {"device_id": 7}, {"event_id": 5}, {"workspace_id": None}, {"event_id2": 1}, {"": None},
        {"consent": {"analytics": True, "ads": False, "Ads": True}}, {"consent": {}},
    ]
    return [json.dumps({**base, **change}) for change in changes] + ["null", '"text"', "{}", "{", " "]


def test_sql_agrees_with_jsonschema_on_edge_cases() -> None:
    lines = EDGE_CASES + _variants()
    sql = _sql_reasons(lines)
    reference = [_reference_valid(line) for line in lines]
    assert [reason is None for reason in sql] == reference
    assert sum(reference) == 12  # the valid variants above, counted by hand


def test_sql_agrees_with_jsonschema_on_generated_lines(tmp_path: Path) -> None:
    stats = generate_events(str(tmp_path), events=3000, seed=5, days=1, end_date=DAY, bad_share=0.3,
                            duplicate_share=0.0)
    lines = [line for path in sorted(tmp_path.rglob("*.ndjson")) for line in path.read_text().splitlines()]
    sql = _sql_reasons(lines)
    assert [reason is None for reason in sql] == [_reference_valid(line) for line in lines]
    assert sum(reason is not None for reason in sql) == stats.bad_lines


def test_unsupported_schema_is_refused_at_load(tmp_path: Path) -> None:
    schema = json.loads(json.dumps(load_contract().schema))
    schema["properties"] = {**schema["properties"], "score": {"type": "number", "minimum": 0}}
    path = tmp_path / "contract.json"
    path.write_text(json.dumps(schema))
    with pytest.raises(ContractError, match=r"score: unsupported JSON Schema keywords \['minimum'\]"):
        load_contract(path)


def _address_like(rng: random.Random) -> str:
    """A string shaped like an IP address, often just off: group counts, `::`, hextet lengths, IPv4 tails
    with leading zeros or octets over 255, stray characters."""
    groups = ["".join(rng.choice("0123456789abcdefABCDEF") for _ in range(rng.choice([0, 1, 1, 2, 4, 4, 5])))
              for _ in range(rng.randint(0, 9))]
    if groups and rng.random() < 0.5:
        groups.insert(rng.randint(0, len(groups)), "")
    text = ":".join(groups) if rng.random() < 0.7 else ""
    if not text or rng.random() < 0.3:
        octets = [rng.choice(["0", "7", "10", "99", "199", "255", "00", "01", "256"]) for _ in range(rng.choice([3, 4, 4, 4, 5]))]
        text = (text + ":" if text and rng.random() < 0.8 else text) + ".".join(octets)
    if rng.random() < 0.1:
        at = rng.randint(0, len(text))
        text = text[:at] + rng.choice([":", "::", ".", "%", "g", " ", "/", "٣"]) + text[at:]
    return text


@pytest.mark.parametrize("fmt", ["ipv4", "ipv6"])
def test_ip_formats_agree_with_jsonschema(fmt: str) -> None:
    """The SQL patterns give jsonschema's verdict (Python's ipaddress) on 50,000 address-like strings."""
    rng = random.Random(11)
    values = sorted({_address_like(rng) for _ in range(50_000)} | {
        "::", "::1", "1::", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "1::2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8",
        "1:2:3:4:5:6:7:8:9", "::ffff:1.2.3.4", "1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:7:1.2.3.4", ":1::2",
        "1:::2", "fe80::1%eth0", "12345::1", "::1.2.3.04", "1.2.3.4", "01.2.3.4", "1.2.3", "",
    })
    checker = Draft202012Validator.FORMAT_CHECKER
    expected = [checker.conforms(value, fmt) for value in values]
    con = duckdb.connect()
    got = [row[0] for row in con.execute(
        "SELECT regexp_full_match(v, ?) FROM unnest(?) WITH ORDINALITY AS t(v, i) ORDER BY i",
        [FORMAT_PATTERNS[fmt], values]).fetchall()]
    assert got == expected
    assert 500 < sum(expected) < len(values) - 500  # both verdicts well represented
