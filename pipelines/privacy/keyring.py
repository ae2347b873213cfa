"""Field-level encryption keyring: per-workspace and per-subject keys.

Why this exists
---------------
The privacy policy promises that data is encrypted and visible only within its
workspace, and that a person's data is erased on request. Deleting every copy
of a value from a columnar warehouse, its snapshots and backups is impractical,
so personal values are encrypted with a key that belongs to the data subject
(per workspace). Erasure then means destroying that key ("crypto-shredding"):
every copy of the ciphertext, wherever it lives, becomes noise.

Key hierarchy
-------------
::

    master key (32 bytes, env GTG_MASTER_KEY or a 0600 key file; never stored in the keyring)
      +-- workspace key (random 32 bytes, AES-GCM-wrapped by the master key)
            +-- blind-index key of an identifier kind
            |     = HKDF-SHA256(workspace key, info=b"gtg/blind-index/v2|" + kind)
            +-- subject key (random 32 bytes, AES-GCM-wrapped by the workspace key)

Values whose subject is unknown/null are encrypted with the workspace key.
``subject_ref`` is the blind index of the subject id, so neither the key store
nor the warehouse needs the plaintext id, and a caller that reads the
warehouse can decrypt using the refs stored next to the ciphertexts.

Rotation: ``rotate_master_key`` re-wraps every stored key under a new master key in one transaction (no value
is re-encrypted). A workspace key is rotated in three steps (``begin_workspace_rotation``: a new key, every
subject key re-wrapped under it, the old one kept as "retired"; the caller re-encrypts the workspace's
subject-less values; ``finish_workspace_rotation`` shreds the retired key). The blind-index key is not
rotated: rotating it would mean re-indexing every identifier from its plaintext. After the first rotation its
root (the original workspace key, which then encrypts nothing) is kept as the workspace's index key.
Platform keys (e.g. the audit log's chain key) are random keys wrapped by the master key.

Formats
-------
* value ciphertext: ``0x01 | nonce (12) | AES-GCM(ciphertext || tag)``, with
  AAD = ``b"gtg/value/v1|" + u32be(len(workspace_id)) + workspace_id + context``
  so a ciphertext cannot be moved to another workspace or column.
* wrapped key: ``0x01 | nonce (12) | AES-GCM(key || tag)`` with AAD
  ``b"gtg/workspace-key/v1|" + workspace_id`` or
  ``b"gtg/subject-key/v1|" + subject_ref (16) + b"|" + workspace_id``.
* blind index: first 16 bytes of HMAC-SHA256(blind-index key of the value's
  kind, utf-8 value). The kind (a data category such as ``user.unique_id`` or
  ``user.device.device_id``) separates identifiers: a device id equal to
  someone's user id has a different blind index, so it never finds, stitches
  or keys that person. ``subject_ref`` is the blind index of the subject id
  under the kind of the column it came from.

Key store
---------
A SQLite file (``keyring_meta``, ``workspace_keys``, ``subject_keys``, ``workspace_key_rotations``,
``platform_keys``) opened
with ``secure_delete=ON`` and ``journal_mode=DELETE`` so that destroyed keys
are overwritten with zeros inside the file. Several processes may share it:
writes use ``BEGIN IMMEDIATE`` plus a busy timeout, keys are created with
``INSERT OR IGNORE`` and re-read (so concurrent writers agree on one key), and a
``destroy_epoch`` counter lets every process drop its in-memory key cache when
another process has shredded keys.

Only ``cryptography`` primitives are used (AESGCM, HMAC, HKDF); nothing here
implements cryptography itself. Error messages never contain plaintext values,
subject ids or key material.

Limits (what crypto-shredding here does *not* cover)
----------------------------------------------------
* ``secure_delete`` cleans the SQLite file. The rollback journal, which briefly
  holds page pre-images during a transaction, is unlinked afterwards but its
  disk blocks are not overwritten, and copies of the key store (backups,
  snapshots) keep old wrapped keys. A shredded key is only gone for good if the
  master key that wraps it is also unavailable to whoever holds such copies:
  keep key-store backups short-lived and separate from the master key.
* Random 96-bit nonces: stay well below 2**32 encryptions per key (a subject
  key never gets near that; a workspace key would need billions of
  subject-less values).
* Blind indexes are deterministic by design: within a workspace and kind they
  reveal which rows share a value, and low-entropy values can be confirmed by
  anyone holding the workspace key.
"""

from __future__ import annotations

import base64
import binascii
import errno
import os
import re
import sqlite3
import stat
import struct
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path
from typing import Any, Callable, TypeVar, Union

import pyarrow as pa
import pyarrow.compute as pc
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pipelines import paths

__all__ = [
    "BLIND_INDEX_BYTES",
    "CIPHERTEXT_VERSION",
    "FORMAT_VERSION",
    "KEY_BYTES",
    "MASTER_KEY_ENV",
    "DecryptStats",
    "Keyring",
    "KeyringError",
    "generate_master_key_text",
    "load_master_key",
    "parse_master_key",
    "platform_master_key",
    "rotate_platform_master_key",
]

MASTER_KEY_ENV = "GTG_MASTER_KEY"
"""Name of the environment variable the caller reads the master key from."""

NEW_MASTER_KEY_ENV = "GTG_NEW_MASTER_KEY"
"""Where a master-key rotation reads the new key when the current one comes from GTG_MASTER_KEY."""

FORMAT_VERSION = 1
"""Version of the SQLite key-store layout."""

CIPHERTEXT_VERSION = 0x01
"""First byte of every value ciphertext and wrapped key."""

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
BLIND_INDEX_BYTES = 16

_VERSION_PREFIX = bytes([CIPHERTEXT_VERSION])
_HEADER_BYTES = 1 + NONCE_BYTES
_WRAPPED_KEY_BYTES = _HEADER_BYTES + KEY_BYTES + TAG_BYTES

_VERIFIER_PLAINTEXT = b"gtg-keyring master key verifier v1"
_VERIFIER_AAD = b"gtg/keyring-verifier/v1"
_WORKSPACE_KEY_AAD = b"gtg/workspace-key/v1|"
_SUBJECT_KEY_AAD = b"gtg/subject-key/v1|"
_VALUE_AAD = b"gtg/value/v1|"
_BLIND_INDEX_INFO = b"gtg/blind-index/v2|"
_INDEX_KEY_AAD = b"gtg/workspace-index-key/v1|"
_RETIRED_KEY_AAD = b"gtg/retired-workspace-key/v1|"
_PLATFORM_KEY_AAD = b"gtg/platform-key/v1|"

_BUSY_TIMEOUT_SECONDS = 60.0
# SQLite's page cache (KiB) while a batch of subject keys is destroyed or created. The keys of a thousand
# people lie all over the store, and a batch of new people adds pages; with SQLite's default 2 MiB the
# transaction's changed pages spill to the file before the commit, each spill syncing the journal again. Pages
# are allocated only as they are touched, and the cache goes back to its size after the commit.
_BATCH_CACHE_KIB = 65536
_SQL_CHUNK = 500  # rows per IN (...) query; far below SQLite's variable limit
_STALE_RETRIES = 3
# Cached subject keys cost about 330 bytes each in Python objects; uncapped, a 10M-event run (230k people)
# held 75 MB more than a 1M-event one. Beyond the cap the oldest are dropped and re-read when needed.
_DEFAULT_MAX_CACHED_SUBJECT_KEYS = 50_000

# URL-safe alphabet as specified; the standard alphabet ("+/") is also
# accepted because `openssl rand -base64 32` output is a common way to make one
# and decoding is unambiguous.
_BASE64_TEXT = re.compile(r"[A-Za-z0-9_\-+/]+={0,2}")

ArrayLike = Union[pa.Array, pa.ChunkedArray, Sequence[Any]]
_T = TypeVar("_T")


class KeyringError(Exception):
    """A keyring problem an operator or caller must act on.

    Messages name paths, workspace ids and contexts where useful, but never
    plaintext values, subject ids or key material.
    """


class _StaleCacheError(Exception):
    """Another process replaced keys this object had cached; retry the batch."""


@dataclass
class DecryptStats:
    """Counters a caller passes to ``decrypt`` to learn what happened.

    ``missing_key`` counts non-null ciphertexts returned as null because their
    key is not in the store: the subject (or whole workspace) was shredded, or
    the key never existed in this store. ``decrypted`` counts values returned.
    Counters accumulate, so one object can be shared by a whole job.
    """

    decrypted: int = 0
    missing_key: int = 0


# --------------------------------------------------------------------------
# Master key
# --------------------------------------------------------------------------


def generate_master_key_text() -> str:
    """Return a new random master key as URL-safe base64 text (44 chars)."""
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def parse_master_key(text: str) -> bytes:
    """Decode master-key text into 32 bytes.

    Raises ``KeyringError`` with a message that never echoes the text, because
    a malformed key is often a real key with a typo and must not reach logs.
    """
    if not isinstance(text, str):
        raise KeyringError("The master key must be base64 text (str).")
    cleaned = text.strip()
    if not cleaned or _BASE64_TEXT.fullmatch(cleaned) is None:
        raise KeyringError(
            "The master key is not valid URL-safe base64 text "
            f"(expected {KEY_BYTES} random bytes encoded as URL-safe base64)."
        )
    unpadded = cleaned.rstrip("=")
    padded = unpadded + "=" * (-len(unpadded) % 4)
    try:
        key = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise KeyringError(
            "The master key is not valid base64 text "
            f"(expected {KEY_BYTES} random bytes encoded as URL-safe base64)."
        ) from None
    if len(key) != KEY_BYTES:
        raise KeyringError(
            f"The master key must decode to {KEY_BYTES} bytes, but it decodes to "
            f"{len(key)} bytes. Generate one with "
            "`python -c 'import os,base64;print(base64.urlsafe_b64encode(os.urandom(32)).decode())'`."
        )
    return key


def load_master_key(value: str | None, key_file: Path, create_if_missing: bool) -> bytes:
    """Return the 32-byte master key.

    Precedence: ``value`` (the ``GTG_MASTER_KEY`` env var, read by the caller)
    when it is set and non-blank, otherwise ``key_file``. A missing key file is
    created (mode 0600, atomically, parent dirs 0700) only when
    ``create_if_missing`` - production should pass False so a lost key is an
    error instead of a silent new key that cannot read existing data.
    A blank ``value`` is treated as unset because ``${GTG_MASTER_KEY:-}``-style
    configuration yields an empty string when the variable is absent.
    """
    if value is not None and value.strip():
        return parse_master_key(value)
    key_file = Path(key_file)
    try:
        return _read_key_file(key_file)
    except FileNotFoundError:
        if not create_if_missing:
            raise KeyringError(
                f"No master key: {MASTER_KEY_ENV} is not set and the key file {key_file} "
                "does not exist. Set the environment variable or restore the key file; "
                "creating a new key would make existing encrypted data unreadable."
            ) from None
    _create_key_file(key_file)
    return _read_key_file(key_file)


def platform_master_key(key_file: Path | None = None, value: str | None = None) -> bytes:
    """The platform's master key: the one place it is read.

    ``GTG_MASTER_KEY`` when set (or ``value``, a test's explicit key), otherwise the key file
    (``key_file``, default ``GTG_MASTER_KEY_FILE`` / ``data/keys/master.key``). A missing key file is
    generated only when ``GTG_ENV=sandbox``; in production the error names the variable to set.
    """
    if value is None:
        value = os.environ.get(MASTER_KEY_ENV)
    return load_master_key(value, key_file or paths.master_key_file(), paths.is_sandbox())


def rotate_platform_master_key(keyring_path: Path, key_file: Path | None = None) -> tuple[int, bytes]:
    """Rotate the platform's master key; returns (workspace keys re-wrapped, the new key).

    When the key comes from ``GTG_MASTER_KEY`` the new one is read from ``GTG_NEW_MASTER_KEY`` (the operator
    then replaces the secret). When it comes from the key file, a new key is generated (or taken from
    ``GTG_NEW_MASTER_KEY``), written next to it as ``<file>.new`` (0600) before the keyring commits, and moved
    over the old file after: a crash in between leaves the keyring readable with the ``.new`` file.
    """
    key_file = key_file or paths.master_key_file()
    from_env = bool(os.environ.get(MASTER_KEY_ENV, "").strip())
    text = os.environ.get(NEW_MASTER_KEY_ENV, "").strip()
    if from_env and not text:
        raise KeyringError(f"{MASTER_KEY_ENV} is set: put the new key in {NEW_MASTER_KEY_ENV} for the rotation, "
                           f"then replace {MASTER_KEY_ENV} with it.")
    new = parse_master_key(text) if text else os.urandom(KEY_BYTES)
    old = platform_master_key(key_file)
    if new == old:
        raise KeyringError("The new master key is the current one.")
    staged = None if from_env else key_file.with_name(key_file.name + ".new")
    if staged is not None:
        staged.unlink(missing_ok=True)
        _write_exclusive(staged, (base64.urlsafe_b64encode(new).decode("ascii") + "\n").encode("ascii"))
    with Keyring.open(keyring_path, old) as keyring:
        count = keyring.rotate_master_key(new)
    if staged is not None:
        os.replace(staged, key_file)
        _fsync_dir(key_file.parent)
    return count, new


def _read_key_file(key_file: Path) -> bytes:
    """Read and parse a key file, refusing one other users could read.

    Permissions are checked on the opened descriptor (fstat) so the check and
    the read concern the same file.
    """
    fd = os.open(key_file, os.O_RDONLY)
    try:
        mode = os.fstat(fd).st_mode
        if os.name == "posix" and mode & 0o077:
            raise KeyringError(
                f"Refusing to read the master key file {key_file}: its permissions are "
                f"{stat.filemode(mode)} ({oct(stat.S_IMODE(mode))}), which lets other users "
                f"access it. Run `chmod 600 {key_file}` and retry."
            )
        with os.fdopen(fd, "rb", closefd=False) as handle:
            raw = handle.read(4096)
    finally:
        os.close(fd)
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise KeyringError(
            f"The master key file {key_file} does not contain base64 text."
        ) from None
    try:
        return parse_master_key(text)
    except KeyringError as exc:
        raise KeyringError(f"The master key file {key_file} is malformed: {exc}") from None


def _create_key_file(key_file: Path) -> None:
    """Write a new key file atomically without overwriting a concurrent winner.

    The key goes to a private temp file which is then hard-linked into place;
    ``link`` fails if another process created the key first, and that key wins
    (``os.replace`` would silently replace a key another process may already
    have used to create a keyring).
    """
    parent = key_file.parent
    parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    text = (generate_master_key_text() + "\n").encode("ascii")
    tmp = parent / f".{key_file.name}.{os.getpid()}.{os.urandom(6).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, text)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, key_file)
        except FileExistsError:
            return  # another process created it first; the caller reads theirs
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            _write_exclusive(key_file, text)  # filesystem without hard links
        _fsync_dir(parent)
    finally:
        tmp.unlink(missing_ok=True)


def _write_exclusive(path: Path, data: bytes) -> None:
    """Fallback for filesystems without hard links: O_EXCL create + write."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    """Persist a directory entry (best effort: not every platform allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------
# Small crypto helpers (thin wrappers over cryptography's primitives)
# --------------------------------------------------------------------------


def _seal(cipher: AESGCM, plaintext: bytes, aad: bytes, nonce: bytes | None = None) -> bytes:
    """`nonce`: a fresh random one, when a batch takes its nonces from one `os.urandom` call."""
    nonce = nonce or os.urandom(NONCE_BYTES)
    return _VERSION_PREFIX + nonce + cipher.encrypt(nonce, plaintext, aad)


def _open_sealed(cipher: AESGCM, sealed: bytes, aad: bytes) -> bytes:
    """Inverse of ``_seal``; raises InvalidTag on any mismatch or damage."""
    if len(sealed) < _HEADER_BYTES + TAG_BYTES or sealed[0] != CIPHERTEXT_VERSION:
        raise InvalidTag()
    return cipher.decrypt(sealed[1:_HEADER_BYTES], sealed[_HEADER_BYTES:], aad)


def _workspace_key_aad(workspace_id: str) -> bytes:
    return _WORKSPACE_KEY_AAD + workspace_id.encode("utf-8")


def _subject_key_aad(workspace_id: str, subject_ref: bytes) -> bytes:
    # subject_ref has a fixed length, so this concatenation is unambiguous.
    return _SUBJECT_KEY_AAD + subject_ref + b"|" + workspace_id.encode("utf-8")


def _value_aad(workspace_id: str, context: str) -> bytes:
    ws = workspace_id.encode("utf-8")
    return _VALUE_AAD + struct.pack(">I", len(ws)) + ws + context.encode("utf-8")


def _blind_index_base(workspace_key: bytes, kind: str) -> hmac.HMAC:
    """An un-finalised HMAC of one identifier kind to ``copy()`` per value (2x cheaper than re-keying)."""
    derived = HKDF(
        algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=_BLIND_INDEX_INFO + kind.encode("utf-8")
    ).derive(workspace_key)
    return hmac.HMAC(derived, hashes.SHA256())


@dataclass(frozen=True)
class _WorkspaceKeys:
    """Everything derived from one unwrapped workspace key, built once (blind-index keys per kind, on first
    use)."""

    cipher: AESGCM  # encrypts subject-less values and wraps subject keys
    index_root: bytes  # the workspace's first key, kept across rotations: each kind's blind-index key derives from it
    retired: AESGCM | None = None  # the previous key while a rotation re-encrypts its values
    blind_bases: dict[str, hmac.HMAC] = field(default_factory=dict)  # never finalised; only copied

    def blind_base(self, kind: str) -> hmac.HMAC:
        base = self.blind_bases.get(kind)
        if base is None:
            base = self.blind_bases[kind] = _blind_index_base(self.index_root, kind)
        return base

    def blind(self, value: bytes, kind: str) -> bytes:
        h = self.blind_base(kind).copy()
        h.update(value)
        return h.finalize()[:BLIND_INDEX_BYTES]


# --------------------------------------------------------------------------
# Arrow input/output helpers
# --------------------------------------------------------------------------


def _as_array(values: ArrayLike, what: str) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    if isinstance(values, pa.Array):
        return values
    try:
        return pa.array(list(values))
    except (pa.ArrowException, TypeError, ValueError):
        raise TypeError(f"{what} must be an Arrow array or a list of str/bytes/None") from None


def _is_bytes_like(type_: pa.DataType) -> bool:
    return (
        pa.types.is_string(type_)
        or pa.types.is_large_string(type_)
        or pa.types.is_binary(type_)
        or pa.types.is_large_binary(type_)
        or pa.types.is_fixed_size_binary(type_)
        or pa.types.is_string_view(type_)
        or pa.types.is_binary_view(type_)
    )


def _is_string(type_: pa.DataType) -> bool:
    return (
        pa.types.is_string(type_)
        or pa.types.is_large_string(type_)
        or pa.types.is_string_view(type_)
    )


def _bytes_list(values: ArrayLike, what: str, *, strings_only: bool = False) -> list[bytes | None]:
    """Arrow string/binary array -> list of bytes (UTF-8 for strings).

    ``strings_only`` is used for values to encrypt: decryption returns strings,
    so accepting arbitrary bytes would break the round trip.
    """
    array = _as_array(values, what)
    if pa.types.is_null(array.type):
        return [None] * len(array)
    if not (_is_string(array.type) if strings_only else _is_bytes_like(array.type)):
        kind = "a string" if strings_only else "a string or binary"
        raise TypeError(f"{what} must be {kind} array, got {array.type}")
    return array.cast(pa.large_binary()).to_pylist()


def _workspace_list(workspace_ids: ArrayLike) -> list[str]:
    array = _as_array(workspace_ids, "workspace_ids")
    if not _is_string(array.type):
        raise TypeError(f"workspace_ids must be a string array, got {array.type}")
    if array.null_count:
        raise ValueError("workspace_ids must not contain nulls")
    ids = array.to_pylist()
    for workspace_id in set(ids):
        _check_workspace_id(workspace_id)
    return ids


def _check_workspace_id(workspace_id: str) -> None:
    if not isinstance(workspace_id, str) or not workspace_id:
        raise ValueError("workspace_id must be a non-empty string")


def _check_kind(kind: str) -> None:
    if not isinstance(kind, str) or not kind:
        raise ValueError("kind must be a non-empty string (the identifier's data category)")


def _check_context(context: str) -> None:
    if not isinstance(context, str) or not context:
        raise ValueError("context must be a non-empty string (e.g. the column name)")


def _check_lengths(**columns: Sequence[Any]) -> int:
    lengths = {name: len(col) for name, col in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"input columns must have the same length, got {lengths}")
    return next(iter(lengths.values()))


def _ref_list(subject_refs: ArrayLike | None, n: int) -> list[bytes | None]:
    if subject_refs is None:
        return [None] * n
    refs = _bytes_list(subject_refs, "subject_refs")
    for ref in refs:
        if ref is not None and len(ref) != BLIND_INDEX_BYTES:
            raise ValueError(f"subject_refs must be {BLIND_INDEX_BYTES}-byte blind indexes")
    return refs


def _group_rows(
    keys_a: Sequence[Any], keys_b: Sequence[Any], present: Sequence[Any]
) -> dict[tuple[Any, Any], list[int]]:
    """Row numbers grouped by (a, b), skipping rows whose ``present`` is None.

    Grouping lets each key's AESGCM be built once per batch and then dropped,
    which bounds memory (an AESGCM object costs ~2.7 KB) and per-value work.
    """
    groups: dict[tuple[Any, Any], list[int]] = {}
    for i, (a, b, value) in enumerate(zip(keys_a, keys_b, present)):
        if value is None:
            continue
        rows = groups.get((a, b))
        if rows is None:
            groups[(a, b)] = [i]
        else:
            rows.append(i)
    return groups


def _chunks(items: Sequence[_T], size: int = _SQL_CHUNK) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _nth_key(material: bytes, i: int) -> bytes:
    """The i-th key from one ``os.urandom`` call made for a whole batch."""
    return material[i * KEY_BYTES : (i + 1) * KEY_BYTES]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------
# SQLite store
# --------------------------------------------------------------------------

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS keyring_meta (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        format_version INTEGER NOT NULL,
        master_key_verifier BLOB NOT NULL,
        destroy_epoch INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS workspace_keys (
        workspace_id TEXT PRIMARY KEY,
        wrapped_key BLOB NOT NULL,
        created_at TEXT NOT NULL
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE IF NOT EXISTS subject_keys (
        workspace_id TEXT NOT NULL,
        subject_ref BLOB NOT NULL,
        wrapped_key BLOB NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (workspace_id, subject_ref)
    ) WITHOUT ROWID
    """,
) + (
    """
    CREATE TABLE IF NOT EXISTS workspace_key_rotations (
        workspace_id TEXT PRIMARY KEY,
        index_key BLOB NOT NULL,   -- master-wrapped blind-index root, kept across rotations
        retired_key BLOB,          -- master-wrapped previous key, until its values are re-encrypted
        rotated_at TEXT NOT NULL
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE IF NOT EXISTS platform_keys (
        name TEXT PRIMARY KEY,
        wrapped_key BLOB NOT NULL,
        created_at TEXT NOT NULL
    ) WITHOUT ROWID
    """,
)
_ADDED_TABLES = ("workspace_key_rotations", "platform_keys")  # created on open in stores made before them


def _connect(path: Path) -> sqlite3.Connection:
    """Open the store with the settings crypto-shredding depends on.

    ``secure_delete`` zeroes deleted cells and freed pages inside the file;
    ``journal_mode=DELETE`` (not WAL) keeps no long-lived second copy of pages
    next to the database. Both are per-connection, so they are set every time.
    Autocommit mode plus explicit ``BEGIN IMMEDIATE`` avoids lock-upgrade
    deadlocks between processes; the busy timeout makes writers wait.
    """
    conn = sqlite3.connect(
        str(path),
        timeout=_BUSY_TIMEOUT_SECONDS,
        isolation_level=None,
        check_same_thread=False,
    )
    try:
        conn.execute("PRAGMA secure_delete = ON")
        if conn.execute("PRAGMA secure_delete").fetchone()[0] != 1:
            raise KeyringError("This SQLite build cannot enable secure_delete; refusing to open.")
        mode = conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0]
        if str(mode).lower() != "delete":
            raise KeyringError(f"Could not set journal_mode=DELETE on {path} (got {mode}).")
    except BaseException:
        conn.close()
        raise
    return conn


def _create_private_file(path: Path) -> None:
    """Create an empty store file readable only by its owner (SQLite's
    journal inherits these permissions). An empty file is a valid empty
    SQLite database."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


@contextmanager
def _page_cache(conn: sqlite3.Connection, kib: int) -> Iterator[None]:
    """A page cache of up to `kib` KiB for the duration (outside any transaction), then the previous size."""
    previous = conn.execute("PRAGMA cache_size").fetchone()[0]
    conn.execute(f"PRAGMA cache_size = {-int(kib)}")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA cache_size = {int(previous)}")


@contextmanager
def _write_txn(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One IMMEDIATE transaction: takes the write lock up front (waiting on the
    busy timeout) so two processes never deadlock upgrading read locks."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


# --------------------------------------------------------------------------
# Keyring
# --------------------------------------------------------------------------


class Keyring:
    """Per-workspace / per-subject keys in a SQLite file, with Arrow batch APIs.

    Create with :meth:`Keyring.open`. All batch methods take Arrow arrays (or
    lists) and are meant to be called with *distinct* values: the caller dedups
    in DuckDB and joins the results back. Unwrapped workspace keys (with their
    AESGCM and HMAC objects) and unwrapped subject keys are cached for the life
    of the object; AESGCM objects for subject keys are built once per batch,
    because keeping ~2.7 KB per subject alive would not scale to millions of
    subjects. The object is thread-safe (one lock) and may be used by several
    processes on the same file at once.
    """

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        master_key: bytes,
        epoch: int,
        *,
        max_cached_subject_keys: int = _DEFAULT_MAX_CACHED_SUBJECT_KEYS,
    ) -> None:
        """Private: use :meth:`Keyring.open`, which validates the master key."""
        self._path = path
        self._conn: sqlite3.Connection | None = conn
        self._master = AESGCM(master_key)
        self._epoch = epoch
        self._lock = threading.RLock()
        self._workspaces: dict[str, _WorkspaceKeys] = {}
        self._subject_keys: dict[tuple[str, bytes], bytes] = {}
        self._max_cached_subject_keys = max_cached_subject_keys

    # ---- lifecycle -------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        master_key: bytes,
        *,
        max_cached_subject_keys: int = _DEFAULT_MAX_CACHED_SUBJECT_KEYS,
    ) -> Keyring:
        """Open (or create) the key store at ``path``.

        For an existing store the master key is checked against the stored
        verifier before anything is written, so a wrong key fails fast and
        leaves the file byte-identical.
        """
        if not isinstance(master_key, (bytes, bytearray)) or len(master_key) != KEY_BYTES:
            raise KeyringError(f"The master key must be {KEY_BYTES} bytes (use load_master_key).")
        path = Path(path)
        _create_private_file(path)
        try:
            conn = _connect(path)
        except sqlite3.Error as exc:
            raise KeyringError(f"Cannot open the keyring at {path}: {exc}") from None
        try:
            meta = cls._read_or_init_meta(conn, path, bytes(master_key))
            cls._check_meta(meta, path, bytes(master_key))
            cls._add_missing_tables(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise KeyringError(f"{path} is not a readable keyring: {exc}") from None
        except BaseException:
            conn.close()
            raise
        return cls(
            path, conn, bytes(master_key), meta[2], max_cached_subject_keys=max_cached_subject_keys
        )

    @staticmethod
    def _read_meta(conn: sqlite3.Connection) -> tuple[int, bytes, int] | None:
        has_meta = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'keyring_meta'"
        ).fetchone()
        if has_meta is None:
            return None
        return conn.execute(
            "SELECT format_version, master_key_verifier, destroy_epoch "
            "FROM keyring_meta WHERE id = 1"
        ).fetchone()

    @classmethod
    def _read_or_init_meta(
        cls, conn: sqlite3.Connection, path: Path, master_key: bytes
    ) -> tuple[int, bytes, int]:
        meta = cls._read_meta(conn)  # read-only: existing stores are never written here
        if meta is not None:
            return meta
        verifier = _seal(AESGCM(master_key), _VERIFIER_PLAINTEXT, _VERIFIER_AAD)
        with _write_txn(conn):
            # Re-check under the write lock: a concurrent process may have
            # initialised the store since the read above; its verifier wins
            # and is checked by the caller like any existing store's.
            if cls._read_meta(conn) is None:
                if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                    raise KeyringError(
                        f"{path} is a SQLite database but not a keyring; refusing to modify it."
                    )
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO keyring_meta "
                    "(id, format_version, master_key_verifier, destroy_epoch, created_at) "
                    "VALUES (1, ?, ?, 0, ?)",
                    (FORMAT_VERSION, verifier, _now()),
                )
        meta = cls._read_meta(conn)
        if meta is None:  # pragma: no cover - the insert above guarantees a row
            raise KeyringError(f"Could not initialise the keyring at {path}.")
        return meta

    @staticmethod
    def _add_missing_tables(conn: sqlite3.Connection) -> None:
        """Stores created before rotation existed get its tables (after the master key was checked)."""
        have = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not have.issuperset(_ADDED_TABLES):
            with _write_txn(conn):
                for statement in _SCHEMA[-len(_ADDED_TABLES):]:
                    conn.execute(statement)

    @staticmethod
    def _check_meta(meta: tuple[int, bytes, int], path: Path, master_key: bytes) -> None:
        version, verifier, _epoch = meta
        if version != FORMAT_VERSION:
            raise KeyringError(
                f"The keyring at {path} has format version {version}; this code "
                f"supports version {FORMAT_VERSION}. Upgrade the platform code."
            )
        try:
            ok = _open_sealed(AESGCM(master_key), verifier, _VERIFIER_AAD) == _VERIFIER_PLAINTEXT
        except InvalidTag:
            ok = False
        if not ok:
            raise KeyringError(
                f"The master key does not match the keyring at {path}: the store was "
                f"created with a different master key. Set {MASTER_KEY_ENV} (or restore the "
                "key file) to the key this keyring was created with. Do not create a new "
                "key: data encrypted under this keyring can only be read with the original one."
            )

    @property
    def path(self) -> Path:
        """Location of the SQLite key store."""
        return self._path

    def close(self) -> None:
        """Close the store and forget all cached keys. Idempotent."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self._workspaces.clear()
            self._subject_keys.clear()

    def __enter__(self) -> Keyring:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else "open"
        return f"<Keyring {self._path} ({state})>"

    # ---- public batch API -------------------------------------------------

    def blind_index(self, workspace_id: str, values: ArrayLike, *, kind: str) -> pa.Array:
        """16-byte keyed hashes of ``values`` for equality lookups and joins.

        Deterministic within a workspace and identifier ``kind`` (a data
        category such as ``user.unique_id``), unrelated across workspaces and
        across kinds; nulls stay null. Creates the workspace key if it does
        not exist yet.
        Values are hashed as UTF-8 bytes exactly as given: normalise (trim,
        lowercase e-mails, ...) before calling if lookups should be lenient.
        """
        _check_workspace_id(workspace_id)
        _check_kind(kind)
        values_list = _bytes_list(values, "values")
        return self._run(lambda: self._blind_rows([workspace_id] * len(values_list), values_list, kind))

    def blind_index_many(self, workspace_ids: ArrayLike, values: ArrayLike, *, kind: str) -> pa.Array:
        """Like :meth:`blind_index` for rows that span several workspaces."""
        _check_kind(kind)
        ws = _workspace_list(workspace_ids)
        values_list = _bytes_list(values, "values")
        _check_lengths(workspace_ids=ws, values=values_list)
        return self._run(lambda: self._blind_rows(ws, values_list, kind))

    def encrypt(
        self,
        workspace_id: str,
        values: ArrayLike,
        *,
        subjects: ArrayLike | None,
        context: str,
        subject_kind: str | None = None,
    ) -> pa.Array:
        """Encrypt string ``values`` (nulls stay null) into binary ciphertexts.

        ``subjects`` holds the plaintext subject id of each row (e.g. user id),
        all of the identifier kind ``subject_kind`` (their key is found by
        ``blind_index(workspace_id, subjects, kind=subject_kind)``), or is None;
        a row whose subject is null is encrypted with the workspace key. Subject keys are created on first use (all new ones of a batch in
        one transaction). ``context`` (e.g. the column name) is bound into the
        ciphertext so it cannot be replayed into another column.
        """
        _check_workspace_id(workspace_id)
        _check_context(context)
        values_list = _bytes_list(values, "values", strings_only=True)
        n = len(values_list)
        subjects_list = [None] * n if subjects is None else _bytes_list(subjects, "subjects")
        _check_lengths(values=values_list, subjects=subjects_list)
        ws = [workspace_id] * n
        return self._run(lambda: self._encrypt_rows(ws, subjects_list, values_list, context, subject_kind))

    def encrypt_many(
        self,
        workspace_ids: ArrayLike,
        subjects: ArrayLike | None,
        values: ArrayLike,
        context: str,
        subject_kind: str | None = None,
    ) -> pa.Array:
        """Like :meth:`encrypt` for rows that span several workspaces.

        The common call is with the columns of an Arrow table of distinct
        ``(workspace_id, subject, value)`` rows; ``subjects`` may be None.
        """
        _check_context(context)
        ws = _workspace_list(workspace_ids)
        values_list = _bytes_list(values, "values", strings_only=True)
        subjects_list = [None] * len(ws) if subjects is None else _bytes_list(subjects, "subjects")
        _check_lengths(workspace_ids=ws, subjects=subjects_list, values=values_list)
        return self._run(lambda: self._encrypt_rows(ws, subjects_list, values_list, context, subject_kind))

    def encrypt_with_refs(
        self,
        workspace_ids: ArrayLike,
        subject_refs: ArrayLike | None,
        values: ArrayLike,
        context: str,
        *,
        create: bool = False,
    ) -> pa.Array:
        """Like :meth:`encrypt_many` for rows whose subject is known by its reference (the blind index of the
        subject id under its kind), as ingestion computes it per row and the stored rows hold it.

        Corrections rewrite stored values without ever seeing the subject's plaintext id: they pass
        ``create=False``, so only existing subject keys are used (a subject whose key was destroyed cannot get
        new data under it). Ingestion passes ``create=True``: new subjects get their key.
        """
        _check_context(context)
        ws = _workspace_list(workspace_ids)
        values_list = _bytes_list(values, "values", strings_only=True)
        refs = _ref_list(subject_refs, len(ws))
        _check_lengths(workspace_ids=ws, subject_refs=refs, values=values_list)
        return self._run(lambda: self._encrypt_under_refs(ws, refs, values_list, context, create))

    def encrypt_columns_with_refs(
        self,
        workspace_ids: ArrayLike,
        subject_refs: ArrayLike | None,
        columns: dict[str, ArrayLike],
        *,
        create: bool = False,
    ) -> dict[str, pa.Array]:
        """Like :meth:`encrypt_with_refs` for several columns of the same rows (``{context: values}``), returning
        ``{context: ciphertexts}``.

        The rows are grouped by key once, every key is read (or, with ``create``, made: all new subject keys of
        the call in one transaction) once and its AES-GCM object built once for every column: a batch of new
        people costs one key each, not one per column. A row whose values are all null needs no key.
        """
        for context in columns:
            _check_context(context)
        ws = _workspace_list(workspace_ids)
        refs = _ref_list(subject_refs, len(ws))
        values = {context: _bytes_list(v, "values", strings_only=True) for context, v in columns.items()}
        _check_lengths(workspace_ids=ws, subject_refs=refs, **{f"values {i}": v for i, v in enumerate(values.values())})
        if not columns:
            return {}
        # a row needs its key if any of its values is set (None: no value, as the grouping skips them)
        arrays = [_as_array(v, "values") for v in columns.values()]
        present = arrays[0].is_valid()
        for array in arrays[1:]:
            present = pc.or_(present, array.is_valid())
        present_list = pc.if_else(present, True, None).to_pylist()
        return self._run(lambda: self._encrypt_groups(_group_rows(ws, refs, present_list), values, create=create))

    def has_workspace(self, workspace_id: str) -> bool:
        """Whether this keyring holds a key for the workspace (i.e. it ever stored data)."""
        _check_workspace_id(workspace_id)
        return bool(self._run(lambda: self._workspace_keys({workspace_id}, create=False)))

    def held_workspaces(self, workspace_ids: set[str]) -> set[str]:
        """Which of ``workspace_ids`` this keyring holds a key for: one look-up for a batch's workspaces
        rather than one :meth:`has_workspace` each."""
        for workspace_id in workspace_ids:
            _check_workspace_id(workspace_id)
        return set(self._run(lambda: self._workspace_keys(set(workspace_ids), create=False)))

    def decrypt(
        self,
        workspace_id: str,
        ciphertexts: ArrayLike,
        *,
        subject_refs: ArrayLike | None,
        context: str,
        stats: DecryptStats | None = None,
    ) -> pa.Array:
        """Decrypt binary ciphertexts back to strings.

        ``subject_refs`` are the blind indexes stored next to the ciphertexts
        (null/None for values encrypted with the workspace key). A ciphertext
        whose key was destroyed (or never existed here) becomes null and is
        counted in ``stats.missing_key``. A ciphertext that fails
        authentication under an existing key - another workspace, column or
        subject, or tampering - raises ``KeyringError`` for the batch.
        """
        _check_workspace_id(workspace_id)
        _check_context(context)
        cts = _bytes_list(ciphertexts, "ciphertexts")
        refs = _ref_list(subject_refs, len(cts))
        _check_lengths(ciphertexts=cts, subject_refs=refs)
        ws = [workspace_id] * len(cts)
        return self._run(lambda: self._decrypt_rows(ws, refs, cts, context, stats))

    def decrypt_many(
        self,
        workspace_ids: ArrayLike,
        subject_refs: ArrayLike | None,
        ciphertexts: ArrayLike,
        context: str,
        stats: DecryptStats | None = None,
    ) -> pa.Array:
        """Like :meth:`decrypt` for rows that span several workspaces."""
        _check_context(context)
        ws = _workspace_list(workspace_ids)
        cts = _bytes_list(ciphertexts, "ciphertexts")
        refs = _ref_list(subject_refs, len(ws))
        _check_lengths(workspace_ids=ws, subject_refs=refs, ciphertexts=cts)
        return self._run(lambda: self._decrypt_rows(ws, refs, cts, context, stats))

    def destroy_subjects(self, workspace_id: str, subject_refs: ArrayLike) -> int:
        """Crypto-shred subjects: delete their keys; return how many existed.

        ``subject_refs`` are blind indexes (``blind_index(workspace_id, [id], kind=...)``).
        Deleted rows are zeroed in the file (secure_delete), removed from this
        object's cache, and the store's destroy epoch is bumped so other
        processes drop their caches before their next batch.
        """
        _check_workspace_id(workspace_id)
        refs = _ref_list(subject_refs, 0)
        return self.destroy_subjects_many([workspace_id] * len(refs), refs)

    def destroy_subjects_many(self, workspace_ids: ArrayLike, subject_refs: ArrayLike) -> int:
        """Like :meth:`destroy_subjects` for subjects of several workspaces, in one transaction (one
        journal and one fsync for a whole retention pass or erasure batch). Pairs given in key order
        (workspace, then reference) visit the store's pages in order, each once."""
        if len(workspace_ids) == 0:
            return 0
        ws = _workspace_list(workspace_ids)
        refs = _ref_list(subject_refs, len(ws))
        _check_lengths(workspace_ids=ws, subject_refs=refs)
        pairs = [(w, ref) for w, ref in zip(ws, refs) if ref is not None]
        if not pairs:
            return 0
        with self._lock:
            conn = self._require_open()
            with _page_cache(conn, _BATCH_CACHE_KIB), _write_txn(conn):
                cursor = conn.executemany(
                    "DELETE FROM subject_keys WHERE workspace_id = ? AND subject_ref = ?", pairs
                )
                deleted = max(cursor.rowcount, 0)
                if deleted:
                    self._bump_epoch(conn)
            if self._subject_keys:  # an erasure's process has usually cached none
                for pair in pairs:
                    self._subject_keys.pop(pair, None)
            return deleted

    def destroy_workspace(self, workspace_id: str) -> int:
        """Crypto-shred a whole workspace: its key and all its subject keys.

        Returns the number of keys deleted (subject keys + the workspace key).
        Values encrypted in this workspace become undecryptable and its blind
        indexes can no longer be recomputed. Using the workspace again later
        creates a fresh, unrelated key.
        """
        _check_workspace_id(workspace_id)
        with self._lock:
            conn = self._require_open()
            with _write_txn(conn):
                subjects = conn.execute(
                    "DELETE FROM subject_keys WHERE workspace_id = ?", (workspace_id,)
                ).rowcount
                workspace = conn.execute(
                    "DELETE FROM workspace_keys WHERE workspace_id = ?", (workspace_id,)
                ).rowcount
                conn.execute("DELETE FROM workspace_key_rotations WHERE workspace_id = ?", (workspace_id,))
                if subjects > 0 or workspace > 0:
                    self._bump_epoch(conn)
            self._forget_workspace(workspace_id)
            return max(subjects, 0) + max(workspace, 0)

    # ---- rotation and platform keys -----------------------------------------

    def rotate_master_key(self, new_master_key: bytes) -> int:
        """Re-wrap every stored key (workspace, index, retired and platform keys, and the verifier) under
        ``new_master_key`` in one transaction; returns how many workspace keys were re-wrapped.

        No value is re-encrypted: values are under workspace and subject keys, which do not change. From
        the commit on, only the new master key opens the store; other processes still holding the old one
        fail on their next key load or creation (never write keys the new master key cannot read).
        """
        if not isinstance(new_master_key, (bytes, bytearray)) or len(new_master_key) != KEY_BYTES:
            raise KeyringError(f"The new master key must be {KEY_BYTES} bytes (use parse_master_key).")
        new = AESGCM(bytes(new_master_key))
        with self._lock:
            conn = self._require_open()
            with _write_txn(conn):
                self._check_master(conn)
                columns = (("workspace_keys", "workspace_id", "wrapped_key", _WORKSPACE_KEY_AAD),
                           ("workspace_key_rotations", "workspace_id", "index_key", _INDEX_KEY_AAD),
                           ("workspace_key_rotations", "workspace_id", "retired_key", _RETIRED_KEY_AAD),
                           ("platform_keys", "name", "wrapped_key", _PLATFORM_KEY_AAD))
                counts = {}
                for table, name, column, prefix in columns:
                    rows = conn.execute(f"SELECT {name}, {column} FROM {table} WHERE {column} IS NOT NULL").fetchall()
                    conn.executemany(
                        f"UPDATE {table} SET {column} = ? WHERE {name} = ?",
                        [(_seal(new, self._unwrap(wrapped, prefix + key.encode("utf-8")), prefix + key.encode("utf-8")),
                          key) for key, wrapped in rows],
                    )
                    counts[(table, column)] = len(rows)
                conn.execute("UPDATE keyring_meta SET master_key_verifier = ? WHERE id = 1",
                             (_seal(new, _VERIFIER_PLAINTEXT, _VERIFIER_AAD),))
                self._bump_epoch(conn)
            self._master = new
            self._drop_caches()
            return counts[("workspace_keys", "wrapped_key")]

    def begin_workspace_rotation(self, workspace_id: str) -> tuple[bool, int]:
        """Step 1 of rotating a workspace key, in one transaction: a new random key becomes the workspace's
        key, every subject key is re-wrapped under it, and the old key is kept (wrapped) as the retired key
        that still decrypts the workspace's subject-less values. Returns (started, subject keys re-wrapped);
        started is False when a rotation of this workspace was already under way (it is resumed as is).

        Then re-encrypt the workspace's subject-less values (decrypt reads both keys meanwhile) and call
        :meth:`finish_workspace_rotation`.
        """
        _check_workspace_id(workspace_id)
        with self._lock:
            conn = self._require_open()
            with _write_txn(conn):
                self._check_master(conn)
                row = conn.execute(
                    "SELECT w.wrapped_key, r.index_key, r.retired_key FROM workspace_keys w "
                    "LEFT JOIN workspace_key_rotations r USING (workspace_id) WHERE w.workspace_id = ?",
                    (workspace_id,),
                ).fetchone()
                if row is None:
                    raise KeyringError(f"There is no key for workspace {workspace_id!r} to rotate.")
                wrapped, index_wrapped, retired = row
                if retired is not None:
                    return False, 0
                ws = workspace_id.encode("utf-8")
                old = self._unwrap(wrapped, _workspace_key_aad(workspace_id))
                index_root = self._unwrap(index_wrapped, _INDEX_KEY_AAD + ws) if index_wrapped else old
                new = os.urandom(KEY_BYTES)
                old_cipher, new_cipher = AESGCM(old), AESGCM(new)
                subjects = conn.execute(
                    "SELECT subject_ref, wrapped_key FROM subject_keys WHERE workspace_id = ?", (workspace_id,)
                ).fetchall()
                rewrapped = []
                for ref, sealed in subjects:
                    aad = _subject_key_aad(workspace_id, ref)
                    try:
                        rewrapped.append((_seal(new_cipher, _open_sealed(old_cipher, sealed, aad), aad), workspace_id, ref))
                    except InvalidTag:
                        raise KeyringError(f"A subject key of workspace {workspace_id!r} failed authentication: "
                                           "the key store is damaged; nothing was rotated.") from None
                conn.executemany(
                    "UPDATE subject_keys SET wrapped_key = ? WHERE workspace_id = ? AND subject_ref = ?", rewrapped)
                conn.execute("UPDATE workspace_keys SET wrapped_key = ? WHERE workspace_id = ?",
                             (_seal(self._master, new, _workspace_key_aad(workspace_id)), workspace_id))
                conn.execute(
                    "INSERT OR REPLACE INTO workspace_key_rotations (workspace_id, index_key, retired_key, rotated_at) "
                    "VALUES (?, ?, ?, ?)",
                    (workspace_id, _seal(self._master, index_root, _INDEX_KEY_AAD + ws),
                     _seal(self._master, old, _RETIRED_KEY_AAD + ws), _now()),
                )
                self._bump_epoch(conn)
            self._forget_workspace(workspace_id)
            return True, len(rewrapped)

    def finish_workspace_rotation(self, workspace_id: str) -> bool:
        """Step 3: shred the retired key (zeroed in the file). Values still under it become unreadable, so
        call this only once every subject-less value of the workspace was re-encrypted. Returns whether a
        retired key was there."""
        _check_workspace_id(workspace_id)
        with self._lock:
            conn = self._require_open()
            with _write_txn(conn):
                done = conn.execute(
                    "UPDATE workspace_key_rotations SET retired_key = NULL "
                    "WHERE workspace_id = ? AND retired_key IS NOT NULL", (workspace_id,)
                ).rowcount > 0
                if done:
                    self._bump_epoch(conn)
            self._forget_workspace(workspace_id)
            return done

    def platform_key(self, name: str) -> bytes:
        """A random 32-byte key of the platform itself (e.g. ``audit-chain``), created on first use and kept
        wrapped by the master key, so it is rotated with it and never written in the clear."""
        if not isinstance(name, str) or not name:
            raise ValueError("a platform key needs a name")
        aad = _PLATFORM_KEY_AAD + name.encode("utf-8")
        with self._lock:
            conn = self._require_open()
            row = conn.execute("SELECT wrapped_key FROM platform_keys WHERE name = ?", (name,)).fetchone()
            if row is None:
                with _write_txn(conn):
                    self._check_master(conn)
                    conn.execute("INSERT OR IGNORE INTO platform_keys (name, wrapped_key, created_at) VALUES (?, ?, ?)",
                                 (name, _seal(self._master, os.urandom(KEY_BYTES), aad), _now()))
                row = conn.execute("SELECT wrapped_key FROM platform_keys WHERE name = ?", (name,)).fetchone()
            return self._unwrap(row[0], aad)

    def _unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        """A key wrapped by the master key; a failure says whether the master key was rotated meanwhile."""
        try:
            return _open_sealed(self._master, wrapped, aad)
        except InvalidTag:
            self._check_master(self._require_open())
            raise KeyringError(f"A stored key in {self._path} failed authentication: the key store is damaged "
                               "or was tampered with.") from None

    def _check_master(self, conn: sqlite3.Connection) -> None:
        """The store's verifier still opens under this object's master key (another process may have
        rotated it since this keyring was opened): checked before wrapping anything new with it."""
        verifier = conn.execute("SELECT master_key_verifier FROM keyring_meta WHERE id = 1").fetchone()[0]
        try:
            _open_sealed(self._master, verifier, _VERIFIER_AAD)
        except InvalidTag:
            raise KeyringError(f"The master key of {self._path} was rotated since this keyring was opened: "
                               f"reopen it with the new key ({MASTER_KEY_ENV}).") from None

    def _forget_workspace(self, workspace_id: str) -> None:
        self._workspaces.pop(workspace_id, None)
        for key in [key for key in self._subject_keys if key[0] == workspace_id]:
            del self._subject_keys[key]

    # ---- batch internals ---------------------------------------------------

    def _run(self, operation: Callable[[], _T]) -> _T:
        """Run a batch under the lock with a coherent cache.

        Caches are dropped when another process destroyed keys (epoch
        changed); if a key is replaced mid-batch the batch is retried.
        """
        with self._lock:
            for _attempt in range(_STALE_RETRIES):
                self._sync_epoch()
                try:
                    return operation()
                except _StaleCacheError:
                    self._drop_caches()
            raise KeyringError(
                f"Stored subject keys in {self._path} keep failing authentication: keys are "
                "being destroyed and re-created concurrently (retry later), or the key store "
                "is damaged."
            )

    def _blind_rows(self, ws: list[str], values: list[bytes | None], kind: str) -> pa.Array:
        keys = self._workspace_keys(set(ws), create=True)
        if len(keys) == 1:
            base = next(iter(keys.values())).blind_base(kind)
            copy = base.copy
            out = []
            append = out.append
            for value in values:
                if value is None:
                    append(None)
                else:
                    h = copy()
                    h.update(value)
                    append(h.finalize()[:BLIND_INDEX_BYTES])
        else:
            out = [None if v is None else keys[w].blind(v, kind) for w, v in zip(ws, values)]
        return pa.array(out, type=pa.binary())

    def _encrypt_rows(
        self,
        ws: list[str],
        subjects: list[bytes | None],
        values: list[bytes | None],
        context: str,
        subject_kind: str | None,
    ) -> pa.Array:
        by_subject = _group_rows(ws, subjects, values)
        if subject_kind is None and any(s is not None for _, s in by_subject):
            raise ValueError("subjects need subject_kind: the identifier kind their blind index is keyed by")
        workspaces = self._workspace_keys({w for w, _ in by_subject}, create=True)
        groups: dict[tuple[str, bytes | None], list[int]] = {}
        for (w, s), rows in by_subject.items():
            groups.setdefault((w, None if s is None else workspaces[w].blind(s, subject_kind)), []).extend(rows)
        return self._encrypt_groups(groups, {context: values}, create=True)[context]

    def _encrypt_under_refs(
        self, ws: list[str], refs: list[bytes | None], values: list[bytes | None], context: str, create: bool
    ) -> pa.Array:
        return self._encrypt_groups(_group_rows(ws, refs, values), {context: values}, create=create)[context]

    def _encrypt_groups(
        self,
        groups: dict[tuple[str, bytes | None], list[int]],
        columns: dict[str, list[bytes | None]],
        *,
        create: bool,
    ) -> dict[str, pa.Array]:
        """Encrypt each (workspace, subject ref) group of rows under its key, every column (context) of the group
        with one AES-GCM object; keys are created only if `create`, otherwise a missing key is an error (never a
        silent workspace-key fallback)."""
        workspaces = self._workspace_keys({w for w, _ in groups}, create=create)
        wanted = {(w, r) for w, r in groups if r is not None and w in workspaces}
        subject_keys = self._subject_key_bytes(wanted, create=create)
        missing = len({w for w, _ in groups} - workspaces.keys()) + len(wanted - subject_keys.keys())
        if missing:
            contexts = ", ".join(repr(c) for c in columns)
            raise KeyringError(f"{missing} key(s) needed for context {contexts} do not exist (destroyed?).")
        n = len(next(iter(columns.values()))) if columns else 0
        outs: dict[str, list[bytes | None]] = {context: [None] * n for context in columns}
        set_values = sum(len(values) - values.count(None) for values in columns.values())
        nonces = os.urandom(NONCE_BYTES * set_values)
        aads = {w: [_value_aad(w, context) for context in columns] for w in {w for w, _ in groups}}
        targets = [(values, outs[context]) for context, values in columns.items()]
        # The tight loop of every protected value (a million per batch): nothing but the encryption in it.
        prefix = _VERSION_PREFIX
        offset = 0
        for (w, r), rows in groups.items():
            # a subject's AES-GCM object is built once per batch, then dropped (bounded memory)
            encrypt = (workspaces[w].cipher if r is None else AESGCM(subject_keys[(w, r)])).encrypt
            for aad, (values, out) in zip(aads[w], targets):
                for i in rows:
                    value = values[i]
                    if value is not None:  # a row of several columns may have some unset
                        nonce = nonces[offset : offset + NONCE_BYTES]
                        offset += NONCE_BYTES
                        out[i] = prefix + nonce + encrypt(nonce, value, aad)
        return {context: pa.array(out, type=pa.binary()) for context, out in outs.items()}

    def _decrypt_rows(
        self,
        ws: list[str],
        refs: list[bytes | None],
        cts: list[bytes | None],
        context: str,
        stats: DecryptStats | None,
    ) -> pa.Array:
        groups = _group_rows(ws, refs, cts)
        workspaces = self._workspace_keys({w for w, _ in groups}, create=False)
        subject_keys = self._subject_key_bytes(
            {(w, r) for w, r in groups if r is not None and w in workspaces}, create=False
        )
        out: list[bytes | None] = [None] * len(cts)
        missing = decrypted = 0
        for (w, r), rows in groups.items():
            if w not in workspaces or (r is not None and (w, r) not in subject_keys):
                missing += len(rows)
                continue
            cipher = workspaces[w].cipher if r is None else AESGCM(subject_keys[(w, r)])
            aad = _value_aad(w, context)
            retired = workspaces[w].retired if r is None else None
            if not _decrypt_group(cipher, aad, rows, cts, out) and not (retired and all(
                _decrypt_group(cipher, aad, [i], cts, out) or _decrypt_group(retired, aad, [i], cts, out)
                for i in rows
            )):
                raise KeyringError(
                    f"A ciphertext could not be authenticated for workspace {w!r} and context "
                    f"{context!r}: it was encrypted for another workspace, column or subject, "
                    "or it was altered."
                )
            decrypted += len(rows)
        if stats is not None:
            stats.missing_key += missing
            stats.decrypted += decrypted
        return pa.array(out, type=pa.binary()).cast(pa.string())

    # ---- key management internals ------------------------------------------

    def _require_open(self) -> sqlite3.Connection:
        if self._conn is None:
            raise KeyringError(f"The keyring at {self._path} is closed.")
        return self._conn

    def _drop_caches(self) -> None:
        self._workspaces.clear()
        self._subject_keys.clear()

    def _read_epoch(self, conn: sqlite3.Connection) -> int:
        return conn.execute("SELECT destroy_epoch FROM keyring_meta WHERE id = 1").fetchone()[0]

    def _sync_epoch(self) -> None:
        """Drop cached keys if any process destroyed keys since we cached them."""
        epoch = self._read_epoch(self._require_open())
        if epoch != self._epoch:
            self._drop_caches()
            self._epoch = epoch

    def _bump_epoch(self, conn: sqlite3.Connection) -> None:
        """Inside a write transaction: note a destruction for other processes.

        If someone else destroyed keys since our last sync, our cache may hold
        their destroyed keys, so it is dropped here too.
        """
        current = self._read_epoch(conn)
        if current != self._epoch:
            self._drop_caches()
        conn.execute("UPDATE keyring_meta SET destroy_epoch = ? WHERE id = 1", (current + 1,))
        self._epoch = current + 1

    def _workspace_keys(
        self, workspace_ids: set[str], *, create: bool
    ) -> dict[str, _WorkspaceKeys]:
        """Cached/loaded/created keys for ``workspace_ids`` (absent ones omitted
        when ``create`` is False)."""
        found = {w: self._workspaces[w] for w in workspace_ids if w in self._workspaces}
        missing = sorted(workspace_ids - found.keys())
        if missing:
            found.update(self._load_workspace_keys(missing))
        missing = [w for w in missing if w not in found]
        if missing and create:
            self._insert_workspace_keys(missing)
            found.update(self._load_workspace_keys(missing))
        return found

    def _load_workspace_keys(self, workspace_ids: Sequence[str]) -> dict[str, _WorkspaceKeys]:
        conn = self._require_open()
        loaded: dict[str, _WorkspaceKeys] = {}
        for chunk in _chunks(workspace_ids):
            rows = conn.execute(
                "SELECT w.workspace_id, w.wrapped_key, r.index_key, r.retired_key FROM workspace_keys w "
                "LEFT JOIN workspace_key_rotations r USING (workspace_id) WHERE w.workspace_id IN "
                f"({','.join('?' * len(chunk))})",
                tuple(chunk),
            ).fetchall()
            for workspace_id, wrapped, index_wrapped, retired in rows:
                ws = workspace_id.encode("utf-8")
                key = self._unwrap(wrapped, _workspace_key_aad(workspace_id))
                index_root = self._unwrap(index_wrapped, _INDEX_KEY_AAD + ws) if index_wrapped else key
                keys = _WorkspaceKeys(
                    cipher=AESGCM(key), index_root=index_root,
                    retired=AESGCM(self._unwrap(retired, _RETIRED_KEY_AAD + ws)) if retired else None,
                )
                self._workspaces[workspace_id] = keys
                loaded[workspace_id] = keys
        return loaded

    def _insert_workspace_keys(self, workspace_ids: Sequence[str]) -> None:
        """Create keys in one transaction; OR IGNORE keeps a concurrent winner."""
        material = os.urandom(KEY_BYTES * len(workspace_ids))
        now = _now()
        rows = [
            (w, _seal(self._master, _nth_key(material, i), _workspace_key_aad(w)), now)
            for i, w in enumerate(workspace_ids)
        ]
        with _write_txn(self._require_open()) as conn:
            self._check_master(conn)
            conn.executemany(
                "INSERT OR IGNORE INTO workspace_keys (workspace_id, wrapped_key, created_at) "
                "VALUES (?, ?, ?)",
                rows,
            )

    def _subject_key_bytes(
        self, pairs: set[tuple[str, bytes]], *, create: bool
    ) -> dict[tuple[str, bytes], bytes]:
        """Raw subject keys for (workspace_id, subject_ref) pairs whose
        workspace key is cached (absent ones omitted when ``create`` is False)."""
        cache = self._subject_keys
        found = {pair: cache[pair] for pair in pairs if pair in cache}
        missing = sorted(pairs - found.keys())  # key order: sequential b-tree reads and inserts
        if missing and not (create and self._look_new(missing)):
            found.update(self._load_subject_keys(missing))
            missing = [pair for pair in missing if pair not in found]
        if missing and create:
            created = self._insert_subject_keys(missing)
            if created is None:  # another process won some races: use its keys
                created = self._load_subject_keys(missing)
            found.update(created)
        self._trim_subject_cache()
        return found

    def _look_new(self, missing: list[tuple[str, bytes]]) -> bool:
        """Whether uncached subjects look new (none of a first chunk has a stored key), so their keys are
        created without reading every one from the store first: an upload or a first sync is mostly new
        people. Either way each gets exactly one key: the inserts ignore a stored key and a batch that met one
        re-reads the stored keys (`_insert_subject_keys`)."""
        return len(missing) > _SQL_CHUNK and not self._load_subject_keys(missing[:_SQL_CHUNK])

    def _load_subject_keys(
        self, pairs: Sequence[tuple[str, bytes]]
    ) -> dict[tuple[str, bytes], bytes]:
        conn = self._require_open()
        by_workspace: dict[str, list[bytes]] = {}
        for workspace_id, ref in pairs:
            by_workspace.setdefault(workspace_id, []).append(ref)
        loaded: dict[tuple[str, bytes], bytes] = {}
        for workspace_id, refs in by_workspace.items():
            wrapper = self._workspaces[workspace_id].cipher
            for chunk in _chunks(refs):
                rows = conn.execute(
                    "SELECT subject_ref, wrapped_key FROM subject_keys WHERE workspace_id = ? "
                    f"AND subject_ref IN ({','.join('?' * len(chunk))})",
                    (workspace_id, *chunk),
                ).fetchall()
                for ref, wrapped in rows:
                    try:
                        key = _open_sealed(wrapper, wrapped, _subject_key_aad(workspace_id, ref))
                    except InvalidTag:
                        # Most likely the workspace key was destroyed and
                        # re-created by another process after we cached it.
                        raise _StaleCacheError() from None
                    loaded[(workspace_id, ref)] = key
        self._subject_keys.update(loaded)
        return loaded

    def _insert_subject_keys(
        self, pairs: Sequence[tuple[str, bytes]]
    ) -> dict[tuple[str, bytes], bytes] | None:
        """Create all new subject keys of a batch in one transaction.

        Returns the new keys when every insert took effect, or None when a
        concurrent writer already created some (the caller then re-reads the
        winners). The epoch is re-checked under the write lock: if another
        process destroyed keys since this batch started, our workspace key
        may be stale, and wrapping with it would store unreadable subject keys.
        """
        material = os.urandom(KEY_BYTES * len(pairs))
        nonces = os.urandom(NONCE_BYTES * len(pairs))  # one call for the batch, as the keys
        keys = [_nth_key(material, i) for i in range(len(pairs))]
        now = _now()
        # the wrap of every new key, inlined (`_seal`, `_subject_key_aad`): a batch can hold a million people
        wrappers = {w: (self._workspaces[w].cipher.encrypt, b"|" + w.encode("utf-8")) for w in {w for w, _ in pairs}}
        prefix, aad_prefix = _VERSION_PREFIX, _SUBJECT_KEY_AAD
        rows = []
        append = rows.append
        for i, (w, ref) in enumerate(pairs):
            encrypt, aad_suffix = wrappers[w]
            nonce = nonces[i * NONCE_BYTES : (i + 1) * NONCE_BYTES]
            append((w, ref, prefix + nonce + encrypt(nonce, keys[i], aad_prefix + ref + aad_suffix), now))
        conn = self._require_open()
        with _page_cache(conn, _BATCH_CACHE_KIB), _write_txn(conn):
            if self._read_epoch(conn) != self._epoch:
                raise _StaleCacheError()
            inserted = conn.executemany(
                "INSERT OR IGNORE INTO subject_keys "
                "(workspace_id, subject_ref, wrapped_key, created_at) VALUES (?, ?, ?, ?)",
                rows,
            ).rowcount
        if inserted != len(pairs):
            return None
        created = dict(zip(pairs, keys))
        self._subject_keys.update(created)
        return created

    def _trim_subject_cache(self) -> None:
        """Bound memory: forget the oldest cached subject keys beyond the cap
        (they are re-read from the store when needed again)."""
        excess = len(self._subject_keys) - self._max_cached_subject_keys
        if excess > 0:
            for key in list(islice(self._subject_keys, excess)):
                del self._subject_keys[key]


def _decrypt_group(
    cipher: AESGCM,
    aad: bytes,
    rows: list[int],
    cts: list[bytes | None],
    out: list[bytes | None],
) -> bool:
    """Decrypt one key's rows into ``out``; False if any fails authentication."""
    decrypt = cipher.decrypt
    minimum = _HEADER_BYTES + TAG_BYTES
    try:
        for i in rows:
            ct = cts[i]
            if len(ct) < minimum or ct[0] != CIPHERTEXT_VERSION:
                return False
            out[i] = decrypt(ct[1:_HEADER_BYTES], ct[_HEADER_BYTES:], aad)
    except InvalidTag:
        return False
    return True
