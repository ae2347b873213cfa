"""Sandbox contact lists, written as people's programs write them: a Google Contacts export (UTF-8 with a
byte-order mark), an Outlook export (Windows-1252, the accents of Windows), a semicolon-separated list a
European spreadsheet saves, and an Excel workbook. The exports hold a duplicate and bad rows, so `make run`
shows the quarantine; their phones are typed as in the US, the region of their workspaces in the sandbox's
app database. The first people of `ws_0001`'s list are contacts of its sandbox Gmail account too.
"""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl

from pipelines.sandbox.mail.people import person

MAIL_ACCOUNT_SEED = 7000  # ws_0001's sandbox Gmail account: its contacts are person(7000, 0..)
GOOGLE_HEADER = ["First Name", "Middle Name", "Last Name", "Organization Name", "E-mail 1 - Label",
                 "E-mail 1 - Value", "Phone 1 - Label", "Phone 1 - Value"]
OUTLOOK_HEADER = ["First Name", "Middle Name", "Last Name", "Company", "E-mail Address", "Business Phone",
                  "Mobile Phone"]


def google_csv(people: list[tuple[str, str, str, str]]) -> bytes:
    """A Google Contacts CSV export of (first, last, email, phone) rows, UTF-8 with a BOM."""
    lines = [",".join(GOOGLE_HEADER)]
    lines += [f"{first},,{last},,* Work,{email},Mobile,{phone}" for first, last, email, phone in people]
    return ("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8")


def outlook_csv(people: list[tuple[str, str, str, str]]) -> bytes:
    """An Outlook CSV export of (first, last, email, phone) rows, in Windows-1252 with quoted fields."""
    lines = [",".join(f'"{h}"' for h in OUTLOOK_HEADER)]
    lines += [",".join(f'"{v}"' for v in (first, "", last, "", email, "", phone))
              for first, last, email, phone in people]
    return ("\r\n".join(lines) + "\r\n").encode("cp1252")


def xlsx(people: list[tuple[str, str, str, str]]) -> bytes:
    """An Excel workbook with a Name / Email / Mobile sheet."""
    frame = pl.DataFrame({"Name": [f"{first} {last}" for first, last, _, _ in people],
                          "Email": [email for _, _, email, _ in people],
                          "Mobile": [phone for _, _, _, phone in people]})
    out = io.BytesIO()
    frame.write_excel(out)
    return out.getvalue()


def _people(seed: int, start: int, count: int, *, national: bool = True) -> list[tuple[str, str, str, str]]:
    """(first, last, email, phone) of fake people; phones as typed in the US, or in E.164."""
    found = []
    for i in range(start, start + count):
        who = person(seed, i)
        found.append((who.given_name, who.family_name, who.email, who.phone_display if national else who.phone))
    return found


def write_sandbox_uploads(landing: Path) -> list[Path]:
    """Four uploads into `landing` (a folder per workspace); returns their paths."""
    gmail_people = _people(MAIL_ACCOUNT_SEED, 0, 30)
    bad = [("Broken", "Row", "not-an-address", ""), ("No", "Contact", "", "")]
    files = {
        "ws_0001/google-export.csv": google_csv(gmail_people + [gmail_people[0]] + bad),
        "ws_0002/outlook-export.csv": outlook_csv(_people(2002, 0, 25) + [("Zoë", "Müller", "", "12")]),
        "ws_0003/leads.csv": "Vorname;Nachname;E-Mail;Telefon\n".encode() + "\n".join(
            f"{f};{l};{e};{p}" for f, l, e, p in _people(2003, 0, 20, national=False)).encode() + b"\n",
        "ws_0004/event-leads.xlsx": xlsx(_people(2004, 0, 15, national=False)),
    }
    written = []
    for name, data in files.items():
        path = landing / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)
    return written
