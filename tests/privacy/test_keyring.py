"""Behaviour of the field-encryption keyring on real files (no mocks).

These tests pin the privacy promises the keyring exists for: values are only
readable in their own workspace and column, subject ids never reach the key
store in plaintext, a wrong master key cannot damage a store, and erasure
(destroying a subject key) leaves no key bytes in the SQLite file.
"""

from __future__ import annotations

import base64
import multiprocessing
import os
import sqlite3
import stat
from pathlib import Path

import pyarrow as pa
import pytest

from pipelines.privacy.keyring import (
    BLIND_INDEX_BYTES,
    DecryptStats,
    Keyring,
    KeyringError,
    generate_master_key_text,
    load_master_key,
    parse_master_key,
)

EMAILS = ["ann@example.com", None, "bob@example.com", "cy@example.com", "ann@example.com "]
USERS = ["user-1", "user-2", None, "user-3", "user-1"]
KIND = "user.unique_id"  # the identifier kind the tests' subjects and blind indexes are keyed by


@pytest.fixture
def master_key() -> bytes:
    return os.urandom(32)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "keys" / "keyring.sqlite"


@pytest.fixture
def keyring(store: Path, master_key: bytes):
    with Keyring.open(store, master_key) as kr:
        yield kr


def _wrapped_subject_keys(store: Path) -> dict[tuple[str, bytes], bytes]:
    """Read wrapped subject keys straight from the file, as an attacker would."""
    conn = sqlite3.connect(store)
    try:
        rows = conn.execute("SELECT workspace_id, subject_ref, wrapped_key FROM subject_keys").fetchall()
    finally:
        conn.close()
    return {(w, bytes(r)): bytes(k) for w, r, k in rows}


# ---------------------------------------------------------------- round trips


def test_round_trip_without_subjects_preserves_nulls(keyring: Keyring) -> None:
    values = pa.array(EMAILS)
    ct = keyring.encrypt("ws-a", values, subjects=None, context="email")

    assert ct.type == pa.binary()
    assert ct.null_count == 1 and ct[1].as_py() is None
    out = keyring.decrypt("ws-a", ct, subject_refs=None, context="email")
    assert out.type == pa.string()
    assert out.to_pylist() == EMAILS


def test_round_trip_with_subjects_and_null_subjects(keyring: Keyring) -> None:
    values = pa.array(EMAILS)
    subjects = pa.array(USERS)
    ct = keyring.encrypt("ws-a", values, subjects=subjects, context="email", subject_kind=KIND)
    refs = keyring.blind_index("ws-a", subjects, kind=KIND)

    stats = DecryptStats()
    out = keyring.decrypt("ws-a", ct, subject_refs=refs, context="email", stats=stats)

    assert out.to_pylist() == EMAILS
    assert stats == DecryptStats(decrypted=4, missing_key=0)


def test_lists_and_chunked_arrays_are_accepted(keyring: Keyring) -> None:
    chunked = pa.chunked_array([["a", "b"], ["c", None]])
    ct = keyring.encrypt("ws-a", chunked, subjects=["s1", None, "s2", "s1"], context="name", subject_kind=KIND)
    refs = keyring.blind_index("ws-a", ["s1", None, "s2", "s1"], kind=KIND)
    out = keyring.decrypt("ws-a", ct.to_pylist(), subject_refs=refs.to_pylist(), context="name")
    assert out.to_pylist() == ["a", "b", "c", None]


def test_ciphertext_layout_and_fresh_nonces(keyring: Keyring) -> None:
    ct = keyring.encrypt("ws-a", pa.array(["same", "same"]), subjects=None, context="c").to_pylist()

    for blob in ct:
        assert blob[0] == 0x01
        assert len(blob) == 1 + 12 + len("same") + 16
    assert ct[0] != ct[1], "random nonces must make equal values encrypt differently"
    assert ct[0][1:13] != ct[1][1:13]


def test_many_variants_match_single_workspace_calls(keyring: Keyring) -> None:
    ws = pa.array(["ws-a", "ws-b", "ws-a", "ws-b", "ws-c"])
    subjects = pa.array(["u1", "u1", None, "u2", "u3"])
    values = pa.array(["v1", "v2", "v3", None, "v5"])

    ct = keyring.encrypt_many(ws, subjects, values, "note", subject_kind=KIND)
    refs = keyring.blind_index_many(ws, subjects, kind=KIND)
    out = keyring.decrypt_many(ws, refs, ct, "note")

    assert out.to_pylist() == values.to_pylist()
    for i, workspace in enumerate(ws.to_pylist()):
        single = keyring.blind_index(workspace, [subjects[i].as_py()], kind=KIND)
        assert single[0].as_py() == refs[i].as_py()
        row = keyring.decrypt(workspace, [ct[i].as_py()], subject_refs=[refs[i].as_py()], context="note")
        assert row.to_pylist() == [values[i].as_py()]


def test_null_values_create_no_subject_keys(keyring: Keyring, store: Path) -> None:
    keyring.encrypt("ws-a", pa.array([None, "x"], pa.string()), subjects=pa.array(["ghost", "real"]), context="c", subject_kind=KIND)
    assert len(_wrapped_subject_keys(store)) == 1


def test_key_store_never_holds_plaintext_subject_ids(keyring: Keyring, store: Path) -> None:
    ids = [f"subject-id-{i:04d}" for i in range(200)]
    keyring.encrypt("ws-a", pa.array(ids), subjects=pa.array(ids), context="c", subject_kind=KIND)
    data = store.read_bytes()
    assert not any(i.encode() in data for i in ids)
    assert len(_wrapped_subject_keys(store)) == 200


# ---------------------------------------------------------------- isolation


def test_other_workspace_cannot_decrypt(keyring: Keyring) -> None:
    secret = "very-secret@example.com"
    ct = keyring.encrypt("ws-a", pa.array([secret]), subjects=None, context="email")
    keyring.encrypt("ws-b", pa.array(["warm up ws-b"]), subjects=None, context="email")

    with pytest.raises(KeyringError) as excinfo:
        keyring.decrypt("ws-b", ct, subject_refs=None, context="email")
    message = str(excinfo.value)
    assert "ws-b" in message and "email" in message
    assert secret not in message


def test_other_workspace_has_no_key_for_subject_ciphertexts(keyring: Keyring) -> None:
    ct = keyring.encrypt("ws-a", pa.array(["x"]), subjects=pa.array(["u1"]), context="c", subject_kind=KIND)
    refs_a = keyring.blind_index("ws-a", ["u1"], kind=KIND)
    refs_b = keyring.blind_index("ws-b", ["u1"], kind=KIND)

    stats = DecryptStats()
    for refs in (refs_a, refs_b):  # neither ws-a's ref nor ws-b's own ref unlocks it in ws-b
        out = keyring.decrypt("ws-b", ct, subject_refs=refs, context="c", stats=stats)
        assert out.to_pylist() == [None]
    assert stats.missing_key == 2


def test_context_binding(keyring: Keyring) -> None:
    subjects = pa.array(["u1"])
    refs = keyring.blind_index("ws-a", subjects, kind=KIND)
    ct = keyring.encrypt("ws-a", pa.array(["x"]), subjects=subjects, context="email", subject_kind=KIND)

    with pytest.raises(KeyringError, match="phone"):
        keyring.decrypt("ws-a", ct, subject_refs=refs, context="phone")


def test_subject_binding_and_tampering(keyring: Keyring) -> None:
    subjects = pa.array(["u1", "u2"])
    refs = keyring.blind_index("ws-a", subjects, kind=KIND)
    ct = keyring.encrypt("ws-a", pa.array(["x", "y"]), subjects=subjects, context="c", subject_kind=KIND).to_pylist()

    swapped = pa.array([refs[1].as_py(), refs[0].as_py()])
    with pytest.raises(KeyringError):
        keyring.decrypt("ws-a", ct, subject_refs=swapped, context="c")
    with pytest.raises(KeyringError):  # subject ciphertext read as a workspace-key ciphertext
        keyring.decrypt("ws-a", ct, subject_refs=None, context="c")

    flipped = bytearray(ct[0])
    flipped[-1] ^= 1
    with pytest.raises(KeyringError):
        keyring.decrypt("ws-a", [bytes(flipped)], subject_refs=[refs[0].as_py()], context="c")
    with pytest.raises(KeyringError):
        keyring.decrypt("ws-a", [b"\x02" + ct[0][1:]], subject_refs=[refs[0].as_py()], context="c")


# ---------------------------------------------------------------- blind index


def test_blind_index_deterministic_per_workspace(keyring: Keyring) -> None:
    values = pa.array(["ann@example.com", None, "bob@example.com", "ann@example.com"])
    a1 = keyring.blind_index("ws-a", values, kind=KIND)
    a2 = keyring.blind_index("ws-a", values.to_pylist(), kind=KIND)
    b = keyring.blind_index("ws-b", values, kind=KIND)

    assert a1.type == pa.binary()
    assert a1.equals(a2)
    assert a1[1].as_py() is None and b[1].as_py() is None
    assert a1[0].as_py() == a1[3].as_py() != a1[2].as_py()
    assert all(len(v) == BLIND_INDEX_BYTES for v in a1.to_pylist() if v is not None)
    assert all(x != y for x, y in zip(a1.to_pylist(), b.to_pylist()) if x is not None)


def test_blind_index_is_separated_by_identifier_kind(keyring: Keyring) -> None:
    """A device id equal to someone's user id must never match it: every kind has its own derived key, also
    for subject keys (the same text as a device subject gets another key than as a user subject)."""
    user = keyring.blind_index("ws-a", ["victim-1"], kind="user.unique_id").to_pylist()
    device = keyring.blind_index("ws-a", ["victim-1"], kind="user.device.device_id").to_pylist()
    assert user != device and len(device[0]) == BLIND_INDEX_BYTES
    ct = keyring.encrypt("ws-a", ["x"], subjects=["victim-1"], context="c", subject_kind="user.device.device_id")
    assert keyring.decrypt("ws-a", ct, subject_refs=device, context="c").to_pylist() == ["x"]
    assert keyring.destroy_subjects("ws-a", user) == 0  # the user subject was never keyed
    with pytest.raises(ValueError, match="kind must be a non-empty string"):
        keyring.blind_index("ws-a", ["victim-1"], kind="")
    with pytest.raises(ValueError, match="subjects need subject_kind"):
        keyring.encrypt("ws-a", ["x"], subjects=["victim-1"], context="c")


def test_blind_index_survives_reopen(store: Path, master_key: bytes) -> None:
    with Keyring.open(store, master_key) as kr:
        before = kr.blind_index("ws-a", ["x"], kind=KIND)
    with Keyring.open(store, master_key) as kr:
        assert kr.blind_index("ws-a", ["x"], kind=KIND).equals(before)


# ---------------------------------------------------------------- master key


def test_wrong_master_key_fails_fast_and_leaves_store_untouched(store: Path, master_key: bytes) -> None:
    with Keyring.open(store, master_key) as kr:
        kr.encrypt("ws-a", pa.array(["x"]), subjects=pa.array(["u1"]), context="c", subject_kind=KIND)
    before = store.read_bytes()
    files_before = sorted(os.listdir(store.parent))
    wrong = os.urandom(32)

    with pytest.raises(KeyringError) as excinfo:
        Keyring.open(store, wrong)

    message = str(excinfo.value)
    assert message.startswith(f"The master key does not match the keyring at {store}: ")
    for key in (wrong, master_key):
        assert base64.urlsafe_b64encode(key).decode() not in message
        assert key.hex() not in message
    assert store.read_bytes() == before
    assert sorted(os.listdir(store.parent)) == files_before


def test_store_file_is_private(store: Path, master_key: bytes) -> None:
    Keyring.open(store, master_key).close()
    assert stat.S_IMODE(store.stat().st_mode) == 0o600


def test_non_keyring_sqlite_file_is_refused_untouched(tmp_path: Path, master_key: bytes) -> None:
    other = tmp_path / "other.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    before = other.read_bytes()
    with pytest.raises(KeyringError, match="not a keyring"):
        Keyring.open(other, master_key)
    assert other.read_bytes() == before


def test_key_file_created_private_and_reused(tmp_path: Path) -> None:
    key_file = tmp_path / "secrets" / "nested" / "master.key"

    first = load_master_key(None, key_file, create_if_missing=True)
    assert len(first) == 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_master_key(None, key_file, create_if_missing=True) == first
    assert load_master_key("", key_file, create_if_missing=False) == first  # blank env = unset
    assert [p.name for p in key_file.parent.iterdir()] == ["master.key"]  # no temp files left


def test_env_value_takes_precedence_over_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "master.key"
    load_master_key(None, key_file, create_if_missing=True)
    text = generate_master_key_text()
    assert load_master_key(text, key_file, create_if_missing=False) == parse_master_key(text)
    assert parse_master_key(text.rstrip("=")) == parse_master_key(text)  # padding optional


def test_missing_key_file_without_create_is_an_error(tmp_path: Path) -> None:
    key_file = tmp_path / "absent.key"
    with pytest.raises(KeyringError, match="GTG_MASTER_KEY"):
        load_master_key(None, key_file, create_if_missing=False)
    assert not key_file.exists()


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    key_file = tmp_path / "master.key"
    key_file.write_text(generate_master_key_text())
    key_file.chmod(mode)
    with pytest.raises(KeyringError, match="chmod 600"):
        load_master_key(None, key_file, create_if_missing=True)


@pytest.mark.parametrize(
    "text",
    [
        "this is not base64 at all: s3cr3t!",
        base64.urlsafe_b64encode(b"sixteen byte key").decode(),  # valid base64, wrong length
        base64.urlsafe_b64encode(os.urandom(33)).decode(),
        "QUJD=RUZH",  # padding in the middle
    ],
)
def test_malformed_key_text_error_hides_the_text(tmp_path: Path, text: str) -> None:
    with pytest.raises(KeyringError) as excinfo:
        load_master_key(text, tmp_path / "unused.key", create_if_missing=True)
    assert text not in str(excinfo.value)
    assert text.strip("=")[:12] not in str(excinfo.value)

    key_file = tmp_path / "bad.key"
    key_file.write_text(text)
    key_file.chmod(0o600)
    with pytest.raises(KeyringError) as excinfo:
        load_master_key(None, key_file, create_if_missing=False)
    assert text.strip("=")[:12] not in str(excinfo.value)
    assert str(key_file) in str(excinfo.value)


# ---------------------------------------------------------------- several processes


def test_two_keyrings_on_one_file_agree(store: Path, master_key: bytes) -> None:
    kr1 = Keyring.open(store, master_key)
    kr2 = Keyring.open(store, master_key)
    try:
        subjects = pa.array(["u1", "u2", None])
        values = pa.array(["a", "b", "c"])
        assert kr1.blind_index("ws-a", subjects, kind=KIND).equals(kr2.blind_index("ws-a", subjects, kind=KIND))

        ct1 = kr1.encrypt("ws-a", values, subjects=subjects, context="c", subject_kind=KIND)
        ct2 = kr2.encrypt("ws-a", values, subjects=subjects, context="c", subject_kind=KIND)  # must reuse kr1's keys
        refs = kr1.blind_index("ws-a", subjects, kind=KIND)
        for reader in (kr1, kr2):
            for ct in (ct1, ct2):
                assert reader.decrypt("ws-a", ct, subject_refs=refs, context="c").equals(values)
        assert len(_wrapped_subject_keys(store)) == 2
    finally:
        kr1.close()
        kr2.close()


def _encrypt_in_subprocess(store: str, master_key: bytes, barrier, results) -> None:
    """Child process body: race the others to create the store and the keys."""
    subjects = pa.array([f"user-{i}" for i in range(300)])
    values = pa.array([f"value-{i}" for i in range(300)])
    barrier.wait()
    with Keyring.open(store, master_key) as kr:
        ct = kr.encrypt_many(pa.array(["ws-race"] * 300), subjects, values, "c", subject_kind=KIND)
        results.put(ct.to_pylist())


def test_concurrent_processes_agree_on_keys(store: Path, master_key: bytes) -> None:
    ctx = multiprocessing.get_context("spawn")
    workers = 3
    barrier = ctx.Barrier(workers)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_encrypt_in_subprocess, args=(str(store), master_key, barrier, results))
        for _ in range(workers)
    ]
    for proc in procs:
        proc.start()
    outputs = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0

    values = [f"value-{i}" for i in range(300)]
    with Keyring.open(store, master_key) as kr:
        refs = kr.blind_index("ws-race", [f"user-{i}" for i in range(300)], kind=KIND)
        for ct in outputs:
            assert kr.decrypt("ws-race", ct, subject_refs=refs, context="c").to_pylist() == values
    assert len(_wrapped_subject_keys(store)) == 300


# ---------------------------------------------------------------- crypto-shredding


def test_destroy_subjects_shreds_keys_from_the_file(store: Path, master_key: bytes) -> None:
    n_subjects = 3000  # enough rows for many b-tree pages and page splits
    subjects = pa.array([f"user-{i}" for i in range(n_subjects)])
    values = pa.array([f"private-{i}" for i in range(n_subjects)])
    with Keyring.open(store, master_key) as kr:
        ct = kr.encrypt("ws-a", values, subjects=subjects, context="c", subject_kind=KIND)
        refs = kr.blind_index("ws-a", subjects, kind=KIND)
        ref_list = refs.to_pylist()
        victims = {i for i in range(0, n_subjects, 7)}
        wrapped = _wrapped_subject_keys(store)
        victim_wrapped = [wrapped[("ws-a", ref_list[i])] for i in victims]
        assert all(k in store.read_bytes() for k in victim_wrapped)

        destroyed = kr.destroy_subjects("ws-a", [ref_list[i] for i in victims])
        assert destroyed == len(victims)
        assert kr.destroy_subjects("ws-a", [ref_list[0]]) == 0  # already gone

        stats = DecryptStats()
        out = kr.decrypt("ws-a", ct, subject_refs=refs, context="c", stats=stats).to_pylist()
        assert all(out[i] is None for i in victims)
        assert all(out[i] == f"private-{i}" for i in range(n_subjects) if i not in victims)
        assert stats == DecryptStats(decrypted=n_subjects - len(victims), missing_key=len(victims))

    data = store.read_bytes()
    assert not any(k in data for k in victim_wrapped), "destroyed key bytes left in the file"
    assert not any(ref_list[i] in data for i in victims)
    assert sorted(os.listdir(store.parent)) == ["keyring.sqlite"]  # no journal left behind

    with Keyring.open(store, master_key) as kr:  # also after reopening (no cache involved)
        out = kr.decrypt("ws-a", ct, subject_refs=refs, context="c").to_pylist()
        assert sum(v is None for v in out) == len(victims)


def test_destroy_in_one_process_is_seen_by_another(store: Path, master_key: bytes) -> None:
    kr1 = Keyring.open(store, master_key)
    kr2 = Keyring.open(store, master_key)
    try:
        subjects = pa.array(["u1", "u2"])
        ct = kr1.encrypt("ws-a", pa.array(["a", "b"]), subjects=subjects, context="c", subject_kind=KIND)
        refs = kr1.blind_index("ws-a", subjects, kind=KIND)
        assert kr2.decrypt("ws-a", ct, subject_refs=refs, context="c").to_pylist() == ["a", "b"]

        kr1.destroy_subjects("ws-a", [refs[0].as_py()])

        # kr2 had u1's key cached; it must not keep decrypting an erased subject.
        assert kr2.decrypt("ws-a", ct, subject_refs=refs, context="c").to_pylist() == [None, "b"]
    finally:
        kr1.close()
        kr2.close()


def test_destroy_workspace(store: Path, master_key: bytes) -> None:
    with Keyring.open(store, master_key) as kr:
        subjects = pa.array(["u1", "u2", None])
        ct = kr.encrypt("ws-a", pa.array(["a", "b", "c"]), subjects=subjects, context="c", subject_kind=KIND)
        refs = kr.blind_index("ws-a", subjects, kind=KIND)
        other = kr.encrypt("ws-b", pa.array(["z"]), subjects=None, context="c")

        assert kr.destroy_workspace("ws-a") == 3  # two subject keys + the workspace key

        stats = DecryptStats()
        out = kr.decrypt("ws-a", ct, subject_refs=refs, context="c", stats=stats)
        assert out.to_pylist() == [None, None, None]
        assert stats.missing_key == 3
        assert kr.decrypt("ws-b", other, subject_refs=None, context="c").to_pylist() == ["z"]
        assert not kr.blind_index("ws-a", subjects, kind=KIND).equals(refs)  # a fresh, unrelated key


def test_closed_keyring_refuses_work(store: Path, master_key: bytes) -> None:
    kr = Keyring.open(store, master_key)
    kr.close()
    kr.close()
    with pytest.raises(KeyringError, match="closed"):
        kr.encrypt("ws-a", ["x"], subjects=None, context="c")


# ---------------------------------------------------------------- scale


def test_encrypt_200k_distinct_values_over_5k_subjects(keyring: Keyring) -> None:
    n, n_subjects = 200_000, 5_000
    values = pa.array([f"person-{i}@example.com" for i in range(n)])
    subjects = pa.array([f"user-{i % n_subjects}" for i in range(n)])

    ct = keyring.encrypt("ws-a", values, subjects=subjects, context="email", subject_kind=KIND)
    refs = keyring.blind_index("ws-a", subjects, kind=KIND)

    assert len(ct) == n and ct.null_count == 0
    assert keyring.decrypt("ws-a", ct, subject_refs=refs, context="email").equals(values)


def test_subject_key_cache_is_bounded_and_evicted_keys_still_work(store: Path, master_key: bytes) -> None:
    subjects = pa.array([f"user-{i}" for i in range(5)])
    values = pa.array([f"value-{i}" for i in range(5)])
    with Keyring.open(store, master_key, max_cached_subject_keys=2) as kr:
        ct = kr.encrypt("ws-a", values, subjects=subjects, context="c", subject_kind=KIND)
        refs = kr.blind_index("ws-a", subjects, kind=KIND)
        assert len(kr._subject_keys) <= 2  # memory stays bounded however many people were seen
        assert kr.decrypt("ws-a", ct, subject_refs=refs, context="c").to_pylist() == values.to_pylist()
        assert len(kr._subject_keys) <= 2


def test_several_columns_share_one_key_per_subject(keyring: Keyring, store: Path) -> None:
    """`encrypt_columns_with_refs`: each column decrypts in its own context only, a subject gets one key for all
    its columns, a row with every value null gets none, and missing keys are refused unless `create`."""
    ws = ["ws_a"] * 4
    refs = keyring.blind_index("ws_a", ["ann", "bob", "cy", "ann"], kind=KIND)
    names, phones = ["Ann", None, None, "Ann B."], ["+1202", None, None, None]
    with pytest.raises(KeyringError, match="1 key"):
        keyring.encrypt_columns_with_refs(ws, refs, {"t.name": names, "t.phone": phones})
    out = keyring.encrypt_columns_with_refs(ws, refs, {"t.name": names, "t.phone": phones}, create=True)
    assert keyring.decrypt_many(ws, refs, out["t.name"], "t.name").to_pylist() == names
    assert keyring.decrypt_many(ws, refs, out["t.phone"], "t.phone").to_pylist() == phones
    assert len(_wrapped_subject_keys(store)) == 1  # ann only: bob's and cy's rows hold no value
    with pytest.raises(KeyringError):
        keyring.decrypt_many(ws[:1], refs[:1], out["t.name"][:1], "t.phone")
    single = keyring.encrypt_with_refs(ws, refs, names, "t.name")  # the same key as the one-column call's
    assert keyring.decrypt_many(ws, refs, single, "t.name").to_pylist() == names
    assert keyring.encrypt_columns_with_refs(ws, refs, {}) == {}
