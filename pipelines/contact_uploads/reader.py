"""Reading an uploaded contact list into a polars frame of text columns, whatever program wrote it.

CSV: the encoding is detected (a byte-order mark says UTF-8, UTF-16 LE or BE; without one, UTF-8 if it decodes,
UTF-16 if every other byte is zero, else Windows-1252, which Excel on Windows writes), the delimiter sniffed
(comma, semicolon, tab or pipe), and the text parsed by polars with every column as text. Excel: the first
sheet, every cell as text. Rows are numbered as a spreadsheet shows them (the header is row 1).
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
    try:
        data.decode("utf-8")
        return data, "utf-8"
    except UnicodeDecodeError:
        pass
    head = data[:_SNIFF_BYTES]
    if len(head) >= 4 and head[1::2].count(0) > len(head) // 4:  # ASCII text in UTF-16 LE without a BOM
        encoding = "utf-16-le"
    elif len(head) >= 4 and head[0::2].count(0) > len(head) // 4:
        encoding = "utf-16-be"
    else:
        encoding = "cp1252"
    try:
        return data.decode(encoding).encode("utf-8"), encoding
    except UnicodeDecodeError:
        raise UnreadableFile("undecodable_file") from None


def _read_csv(text: bytes) -> pl.DataFrame:
    if not text.strip():
        return pl.DataFrame()
    sample = text[:_SNIFF_BYTES].decode("utf-8", errors="ignore")
    try:
        delimiter = csv.Sniffer().sniff(sample.split("\n", 20)[0] + "\n", delimiters=_DELIMITERS).delimiter
    except csv.Error:
        delimiter = ","
    try:
        return pl.read_csv(io.BytesIO(text), separator=delimiter, infer_schema=False, row_index_name=ROW,
                           row_index_offset=2, truncate_ragged_lines=False, raise_if_empty=False)
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError, pl.exceptions.ShapeError):
        raise UnreadableFile("unreadable_file") from None


def _read_xlsx(data: bytes) -> pl.DataFrame:
    try:
        frame = pl.read_excel(io.BytesIO(data), sheet_id=1, infer_schema_length=0, drop_empty_rows=False,
                              raise_if_empty=False)
    except Exception:  # calamine's own errors for a corrupt or mislabelled file; the message names no value
        raise UnreadableFile("unreadable_file") from None
    return frame.with_row_index(ROW, offset=2).with_columns(pl.col(ROW).cast(pl.UInt32))


def header_key(name: str) -> str:
    """A header reduced to lower-case letters and digits: "E-mail Address" -> "emailaddress"."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def map_headers(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with `_row` and one text column per field found (the first matching header of each)."""
    keys = {header_key(c): c for c in reversed(frame.columns) if c != ROW}
    picked = {}
    for field, aliases in HEADER_ALIASES.items():
        source = next((keys[a] for a in aliases if a in keys), None)
        if source is not None:
            picked[field] = source
    if ROW not in frame.columns:
        return pl.DataFrame({ROW: pl.Series([], dtype=pl.UInt32)})
    return frame.select(pl.col(ROW).cast(pl.UInt32),
                        *(pl.col(source).cast(pl.String).alias(field) for field, source in picked.items()))
