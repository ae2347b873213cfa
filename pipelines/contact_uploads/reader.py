"""Reading an uploaded contact list into a polars frame of text columns, whatever program wrote it.

CSV: the encoding is detected (a byte-order mark says UTF-8, UTF-16 LE or BE; without one, UTF-16 if every
other byte of the start is zero, UTF-8 if it decodes, else Windows-1252, which Excel on Windows writes), the
delimiter sniffed (comma, semicolon, tab or pipe), and the text parsed by polars with every column as text. A
file polars cannot take whole (a row with more fields than the header, a stray or unclosed quote, as a file cut
short ends) is read again record by record with Python's `csv` module, so one bad record costs that record
only: it keeps its row number with a reason in `_read_reason` (`ragged_row`, `malformed_row`) and no value.
A row with fewer fields than the header is padded with empty cells, as spreadsheets save them. Excel: the
first sheet, every cell as text. Rows are numbered as a spreadsheet shows them (the header is row 1; a record
whose quoted field spans lines is one row).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import dataclass

import polars as pl

from pipelines.contact_uploads.settings import HEADER_ALIASES

ROW = "_row"
READ_REASON = "_read_reason"
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_SNIFF_BYTES = 64 * 1024
_DELIMITERS = ",;\t|"


class UnreadableFile(Exception):
    """A file that cannot be taken at all; `reason` is a quarantine reason code (never a value)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ContactFrame:
    """A file's rows with their fields mapped: columns `_row` and each field found (`email`, `phone`, …)."""

    frame: pl.DataFrame
    encoding: str | None


def read_upload(name: str, data: bytes) -> ContactFrame:
    """The file's rows as text columns named by field (see `map_headers`)."""
    if name.lower().endswith(".xlsx"):
        frame, encoding = _read_xlsx(data), None
    else:
        text, encoding = decode(data)
        frame = _read_csv(text)
    return ContactFrame(map_headers(frame), encoding)


def decode(data: bytes) -> tuple[bytes, str]:
    """The file as UTF-8 bytes (no BOM) and the encoding it was in."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding).encode("utf-8"), encoding.replace("-sig", "")
            except UnicodeDecodeError:
                raise UnreadableFile("undecodable_file") from None
    # UTF-16 without a BOM first: mostly-ASCII UTF-16 is valid UTF-8 too (its zero bytes are NUL characters)
    head = data[:_SNIFF_BYTES]
    if len(head) >= 4 and head[1::2].count(0) > len(head) // 4:
        encoding = "utf-16-le"
    elif len(head) >= 4 and head[0::2].count(0) > len(head) // 4:
        encoding = "utf-16-be"
    else:
        if _is_utf8(data):
            return data, "utf-8"
        encoding = "cp1252"
    try:
        return data.decode(encoding).encode("utf-8"), encoding
    except UnicodeDecodeError:
        raise UnreadableFile("undecodable_file") from None


def _is_utf8(data: bytes, chunk: int = 16 << 20) -> bool:
    """Whether `data` is valid UTF-8, checked a slice at a time (decoding a large file whole would hold a second
    copy of it as text)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    try:
        for start in range(0, len(data), chunk):
            decoder.decode(view[start:start + chunk])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _read_csv(text: bytes) -> pl.DataFrame:
    if not text.strip():
        return pl.DataFrame()
    sample = text[:_SNIFF_BYTES].decode("utf-8", errors="ignore")
    try:
        delimiter = csv.Sniffer().sniff(sample.split("\n", 20)[0] + "\n", delimiters=_DELIMITERS).delimiter
    except csv.Error:
        delimiter = ","
    try:
        frame = pl.read_csv(io.BytesIO(text), separator=delimiter, infer_schema=False, truncate_ragged_lines=False,
                            raise_if_empty=False)
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError, pl.exceptions.ShapeError):
        return _read_records(text.decode("utf-8"), delimiter)
    return _numbered(frame.rename(_out_of_the_way(frame.columns)))


def _out_of_the_way(columns: list[str]) -> dict[str, str]:
    """New names for a file's own columns named as the reader's (`_row`, `_read_reason`): a trailing `_`."""
    taken = set(columns)
    renamed = {}
    for name in (ROW, READ_REASON):
        if name in taken:
            new = name + "_"
            while new in taken:
                new += "_"
            taken.add(new)
            renamed[name] = new
    return renamed


def _numbered(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with `_row` first, numbered as a spreadsheet shows the rows."""
    return frame.with_row_index(ROW, offset=2).with_columns(pl.col(ROW).cast(pl.UInt32))


def _read_records(text: str, delimiter: str) -> pl.DataFrame:
    """A file polars cannot take whole, record by record: a record the `csv` module rejects (a quote where none
    may be, or still open at the end of the file) or with more fields than the header is kept as a row of
    nulls with its `_read_reason`; the records after it are read on."""
    limit = csv.field_size_limit()
    csv.field_size_limit(len(text) + 1)  # polars takes fields of any size: so does this
    try:
        records = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
        header = _next_record(records)
        while header == []:  # blank lines before the header, which polars skips too
            header = _next_record(records)
        if header is None:
            return pl.DataFrame()
        if isinstance(header, str):  # the header itself is malformed: no column can be told apart
            raise UnreadableFile("unreadable_file")
        width = len(header)
        rows: list[list[str | None]] = []
        reasons: list[str | None] = []
        while (record := _next_record(records)) is not None:
            if isinstance(record, str) or len(record) > width:
                rows.append([None] * width)
                reasons.append(record if isinstance(record, str) else "ragged_row")
            else:
                rows.append(record + [None] * (width - len(record)) if record else [None] * width)
                reasons.append(None)
    finally:
        csv.field_size_limit(limit)
    names = [_out_of_the_way(header).get(n, n) if n in (ROW, READ_REASON) else n for n in _unique(header)]
    frame = pl.DataFrame({name: pl.Series([r[i] for r in rows], dtype=pl.String) for i, name in enumerate(names)}
                         | {READ_REASON: pl.Series(reasons, dtype=pl.String)})
    return _numbered(frame)


def _next_record(records) -> list[str] | str | None:
    """The next record's fields, `"malformed_row"` for a record the `csv` module rejects (it reads on from the
    next line), or None at the end."""
    try:
        return next(records)
    except StopIteration:
        return None
    except csv.Error:
        return "malformed_row"


def _unique(names: list[str]) -> list[str]:
    """Header names made distinct as polars makes them (`Email`, `Email_duplicated_0`, ...): the first of a
    name keeps it, so the first column of a field is the one taken."""
    taken = set(names)
    out: list[str] = []
    for name in names:
        if name in out:
            n = 0
            while f"{name}_duplicated_{n}" in taken:
                n += 1
            name = f"{name}_duplicated_{n}"
            taken.add(name)
        out.append(name)
    return out


def _read_xlsx(data: bytes) -> pl.DataFrame:
    try:
        frame = pl.read_excel(io.BytesIO(data), sheet_id=1, infer_schema_length=0, drop_empty_rows=False,
                              raise_if_empty=False)
    except Exception:  # calamine's own errors for a corrupt or mislabelled file; the message names no value
        raise UnreadableFile("unreadable_file") from None
    return _numbered(frame.rename(_out_of_the_way(frame.columns)))


def header_key(name: str) -> str:
    """A header reduced to lower-case letters and digits: "E-mail Address" -> "emailaddress"."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def map_headers(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with `_row` and one text column per field found (the first matching header of each)."""
    keys = {header_key(c): c for c in reversed(frame.columns) if c not in (ROW, READ_REASON)}
    picked = {}
    for field, aliases in HEADER_ALIASES.items():
        source = next((keys[a] for a in aliases if a in keys), None)
        if source is not None:
            picked[field] = source
    if ROW not in frame.columns:
        return pl.DataFrame({ROW: pl.Series([], dtype=pl.UInt32)})
    reason = [pl.col(READ_REASON)] if READ_REASON in frame.columns else []
    return frame.select(pl.col(ROW).cast(pl.UInt32), *reason,
                        *(pl.col(source).cast(pl.String).alias(field) for field, source in picked.items()))
