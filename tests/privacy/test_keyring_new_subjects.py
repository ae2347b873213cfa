"""A large batch of subjects the keyring has not cached, some of whom already have a stored key: whether the
keyring reads the stored keys first or creates keys first (when a first chunk looks new), every subject ends
with exactly one key, and a subject stored before keeps theirs (values encrypted in the batch decrypt under it).
Real key store files, no mocks."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pyarrow as pa
import pytest

from pipelines.privacy.keyring import Keyring

WS = "ws_batch"
CONTEXTS = ("contacts.email", "contacts.phone")
NEW = 1_200  # more than one chunk of the store's IN (...) queries (500)


def _refs(first: int, count: int) -> list[bytes]:
    """Subject references in the middle of the key order (they sort after 0x00… and before 0xff…)."""
    return [bytes([0x80]) + i.to_bytes(15, "big") for i in range(first, first + count)]


def _stored(store: Path) -> dict[bytes, bytes]:
    conn = sqlite3.connect(store)
    try:
        return {bytes(r): bytes(k) for r, k in conn.execute(
            "SELECT subject_ref, wrapped_key FROM subject_keys WHERE workspace_id = ?", [WS])}
    finally:
        conn.close()


@pytest.mark.parametrize("earlier", [b"\x00" * 16, b"\xff" * 16], ids=["stored-key-first", "stored-key-last"])
def test_a_batch_of_mostly_new_people_keeps_a_stored_key(tmp_path: Path, earlier: bytes) -> None:
    store, master = tmp_path / "keyring.sqlite", os.urandom(32)
    with Keyring.open(store, master) as first:  # another run stored this person's key
        before = first.encrypt_with_refs(pa.array([WS]), pa.array([earlier], pa.binary()),
                                         pa.array(["kept@example.com"]), CONTEXTS[0], create=True)
    wrapped_before = _stored(store)[earlier]

    refs = [earlier, *_refs(0, NEW)]
    emails = [f"person{i}@example.com" for i in range(len(refs))]
    phones = [None if i % 3 else f"+1202555{i:04d}" for i in range(len(refs))]
    with Keyring.open(store, master) as kr:  # a new process: nothing cached
        out = kr.encrypt_columns_with_refs(pa.array([WS] * len(refs)), pa.array(refs, pa.binary()),
                                           {CONTEXTS[0]: pa.array(emails), CONTEXTS[1]: pa.array(phones)},
                                           create=True)

    stored = _stored(store)
    assert len(stored) == NEW + 1
    assert stored[earlier] == wrapped_before  # not replaced
    with Keyring.open(store, master) as reader:
        ws, ref_array = pa.array([WS] * len(refs)), pa.array(refs, pa.binary())
        assert reader.decrypt_many(ws, ref_array, out[CONTEXTS[0]], CONTEXTS[0]).to_pylist() == emails
        assert reader.decrypt_many(ws, ref_array, out[CONTEXTS[1]], CONTEXTS[1]).to_pylist() == phones
        assert reader.decrypt_many(pa.array([WS]), pa.array([earlier], pa.binary()), before,
                                   CONTEXTS[0]).to_pylist() == ["kept@example.com"]
