"""The vectorised e-mail check of uploads is exactly email-validator: every address the one-expression fast
path accepts, email-validator accepts with the same stored form, and every other address goes through
email-validator itself. Hypothesis searches addresses built from the characters where the two could part:
case, dots, the specials of the local part, hyphens and label lengths of the domain, lengths at the limits, and
non-ASCII letters whose lower case is ASCII (the Kelvin sign) or longer (the dotted capital I)."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.contact_uploads.normalise import _email, _emails

_local_chars = st.sampled_from(list("aZ09._%+-") + ["\u212a", "\u0130", "é", "ß", " ", '"', "!", "#", "'", "~"])
_domain_chars = st.sampled_from(list("aZ09.-") + ["\u212a", "é", "_", " "])
_address = st.builds(
    lambda local, domain, tld: f"{local}@{domain}.{tld}",
    st.text(_local_chars, min_size=0, max_size=70),
    st.text(_domain_chars, min_size=0, max_size=70),
    st.sampled_from(["com", "ORG", "c", "co1", "xn--p1ai", "museum", "a" * 63, "a" * 64, "test", "invalid"]),
) | st.text(max_size=40) | st.sampled_from(["a@b.com", "A@B.COM", "a..b@c.com", ".a@b.com", "a.@b.com",
                                             "a@-b.com", "a@b-.com", "a@b..com", "a" * 64 + "@b.com",
                                             "a" * 65 + "@b.com", "a@" + "b" * 63 + ".com", "a@" + "b" * 64 + ".com",
                                             "a@" + ("b" * 60 + ".") * 4 + "com"])


@settings(max_examples=1500, deadline=None, derandomize=True, database=None)
@given(st.lists(_address, min_size=1, max_size=20, unique=True))
def test_the_vectorised_email_check_stores_what_email_validator_stores(addresses: list[str]) -> None:
    checked = dict(_emails(pl.Series(addresses, dtype=pl.String)).iter_rows())
    assert checked == {a: _email(a) for a in addresses}
