"""The audit log's chain across appends: each append finds the last entry by reading the file from its end."""

from __future__ import annotations

from pathlib import Path

from pipelines.privacy.audit import ChainStatus, AuditLog, Entry

KEY = b"k" * 32


def test_each_append_continues_the_chain_from_the_last_entry(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", KEY)
    log.append_many([Entry(actor="test", action="many", counts={"n": i}) for i in range(500)])  # many blocks
    log.append(actor="test", action="long", counts={"reason": "x" * 20_000})  # longer than a block read
    with log.path.open("a", encoding="utf-8") as handle:  # blank lines after it change nothing
        handle.write("\n  \n")
    log.append(actor="test", action="after")
    entries = log.entries()
    assert [e["seq"] for e in entries] == list(range(1, 503))
    assert [e["action"] for e in entries[-3:]] == ["many", "long", "after"]
    assert entries[-1]["prev"] == entries[-2]["hash"] and entries[-2]["prev"] == entries[-3]["hash"]
    assert log.verify() == ChainStatus(True, 502)


def test_the_first_append_starts_the_chain(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", KEY)
    first = log.append(actor="test", action="first")
    assert (first["seq"], first["prev"]) == (1, "0" * 64)
    assert log.verify() == ChainStatus(True, 1)
