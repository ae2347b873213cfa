"""Deterministic fake people: names, e-mail addresses and phone numbers that look real but belong to nobody.

Why it exists: mail and contact syncs must be developed against data with the shape (and the personal-data
columns) of a real address book, without using anybody's real data. Every person is derived from
`(seed, index)` alone, so the same seed always yields the same people, whatever was generated before.

Safety of the values: e-mail domains are either reserved for documentation (example.com/.org/.net, RFC 2606)
or invented names under the reserved `.test` TLD, and phone numbers use the 555-01XX range that North American
numbering reserves for fiction, so nothing generated here can reach a real mailbox or phone.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Person", "person", "COMPANY_DOMAINS"]

_FIRST = (
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Elijah", "Sophia", "James", "Isabella", "Lucas", "Mia", "Mateo",
    "Amelia", "Benjamin", "Harper", "Henry", "Evelyn", "Theodore", "Charlotte", "Oliver", "Aisha", "Wei", "Priya",
    "Kenji", "Fatima", "Diego", "Chloe", "Rafael", "Ingrid", "Tomasz", "Yuki", "Omar", "Leila", "Sven", "Anika",
    "Mohammed", "Zoe", "Hugo", "Elena", "Marco", "Nadia", "Pierre", "Greta", "Arjun", "Mei", "Kwame", "Lucia",
    "Jonas", "Sara", "Daniel", "Hannah", "Samuel", "Laura", "Felix", "Clara", "Ivan", "Julia", "Adam", "Nora",
    "Victor", "Alice", "Emil", "Lena", "Oscar", "Maya", "Leo", "Ines", "Paul", "Rosa", "Tariq",
)
_LAST = (
    "Smith", "Johnson", "Williams", "Brown", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez", "Hernandez",
    "Lopez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson",
    "White", "Harris", "Clark", "Lewis", "Walker", "Hall", "Young", "King", "Wright", "Nguyen", "Kim", "Patel",
    "Chen", "Wang", "Singh", "Kowalski", "Novak", "Muller", "Schmidt", "Rossi", "Dubois", "Larsen", "Jensen",
    "Silva", "Santos", "Okafor", "Mensah", "Haddad", "Sato", "Tanaka", "Ivanova", "Popescu", "Horvat", "Berg",
    "Fischer", "Weber", "Costa", "Moreau", "Bianchi", "O'Brien", "Murphy", "Kelly", "Byrne", "Nakamura", "Ali",
)
# Reserved example domains and invented company domains under the reserved .test TLD.
COMPANY_DOMAINS: tuple[str, ...] = (
    "example.com", "example.org", "example.net", "acme-logistics.test", "northwind.test", "contoso-crm.test",
    "globex.test", "initech.test", "umbrella-health.test", "stark-ventures.test", "wayne-partners.test",
    "hooli.test", "pied-piper.test", "vandelay.test", "wonka-foods.test", "tyrell-labs.test",
)
_PERSONAL_DOMAINS = ("mail.test", "inbox.test", "post.example.com")
_AREA_CODES = ("202", "212", "303", "312", "415", "512", "617", "702", "206", "404", "305", "646")


@dataclass(frozen=True, slots=True)
class Person:
    """A fake person; `phone` is E.164, `phone_display` the national format people type."""

    given_name: str
    family_name: str
    email: str
    phone: str
    phone_display: str
    company: str

    @property
    def display_name(self) -> str:
        return f"{self.given_name} {self.family_name}"


def person(seed: int, index: int) -> Person:
    """Person number `index` of `seed`'s population; independent of any other index (no shared RNG state)."""
    rng = random.Random(seed * 1_000_003 + index)
    given = rng.choice(_FIRST)
    family = rng.choice(_LAST)
    domain = rng.choice(COMPANY_DOMAINS) if rng.random() < 0.7 else rng.choice(_PERSONAL_DOMAINS)
    local = f"{given}.{family}".lower().replace("'", "")
    # Webmail addresses carry a number, as they do in life; it also makes most addresses unique by construction.
    email = f"{local}@{domain}" if domain in COMPANY_DOMAINS else f"{local}{index}@{domain}"
    area = rng.choice(_AREA_CODES)
    line = f"01{rng.randrange(100):02d}"
    company = domain.split(".")[0].replace("-", " ").title() if domain in COMPANY_DOMAINS[3:] else ""
    return Person(given, family, email, f"+1{area}555{line}", f"({area}) 555-{line}", company)
