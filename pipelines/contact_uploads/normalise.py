"""Normalising and validating an upload's fields: e-mails lower-cased and validated (email-validator), phones
to E.164 in the workspace's default region (phonenumbers), names split, consent read as a flag.

Each distinct value is checked once. E-mails of the plain everyday shape are accepted in one vectorised
expression (a strict subset of what email-validator accepts); only the others go through email-validator.
A row is quarantined with the first problem found: the reader's (`ragged_row`, `malformed_row`), then
`invalid_email`, `invalid_phone` or `no_identifier`.
"""

from __future__ import annotations

import polars as pl
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

from pipelines.contact_uploads.reader import READ_REASON, ROW
from pipelines.contact_uploads.settings import FALSE_VALUES, TRUE_VALUES
from pipelines.phones import e164

# Dot-separated atoms of letters, digits and _%+- before the @; dot-separated labels (letters, digits, inner
# hyphens, at most 63 characters) after it, ending in a letters-only top-level domain. Length is checked apart.
_PLAIN_EMAIL = (r"^[a-z0-9_%+-]+(\.[a-z0-9_%+-]+)*@([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
# Domains email-validator turns down whatever their shape: special-use names (but `test`, which the sandbox uses),
# and any label with `--` (IDNA's rules on them are email-validator's to apply).
_NOT_PLAIN_DOMAIN = (r"(@|\.)(" + "|".join(d for d in SPECIAL_USE_DOMAIN_NAMES if d != "test") + r")$|--")
_MAX_EMAIL = 254
_MAX_LOCAL = 64
REASON = "_reason"
FIELDS = ("first_name", "last_name", "email", "phone", "company", "email_opt_in")


def normalised(frame: pl.DataFrame, region: str | None) -> pl.DataFrame:
    """`_row`, the fields as stored (missing ones null), and `_reason` (null for a good row)."""
    text = {c: pl.col(c).str.strip_chars() for c in frame.columns if c not in (ROW, READ_REASON)}
    read = pl.col(READ_REASON) if READ_REASON in frame.columns else pl.lit(None, dtype=pl.String).alias(READ_REASON)
    frame = frame.select(pl.col(ROW), read, *(expr.replace("", None).alias(c) for c, expr in text.items()))
    for field in ("email", "phone", "first_name", "last_name", "full_name", "company", "email_opt_in"):
        if field not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(field))
    emails = _emails(frame.get_column("email").drop_nulls().unique())
    phones = frame.get_column("phone").drop_nulls().unique()
    phones = pl.DataFrame({"value": phones,
                           "out": phones.map_elements(lambda v: e164(v, region), return_dtype=pl.String)})
    frame = frame.join(emails.rename({"value": "email", "out": "_email"}), on="email", how="left",
                       maintain_order="left") \
                 .join(phones.rename({"value": "phone", "out": "_phone"}), on="phone", how="left",
                       maintain_order="left")
    split = pl.col("full_name").str.splitn(" ", 2)
    return frame.select(
        pl.col(ROW),
        pl.coalesce(pl.col("first_name"), split.struct.field("field_0")).alias("first_name"),
        pl.when(pl.col("first_name").is_null() & pl.col("last_name").is_null())
          .then(split.struct.field("field_1")).otherwise(pl.col("last_name")).alias("last_name"),
        pl.col("_email").alias("email"),
        pl.col("_phone").alias("phone"),
        pl.col("company"),
        pl.col("email_opt_in").str.to_lowercase().replace_strict(
            {**dict.fromkeys(TRUE_VALUES, True), **dict.fromkeys(FALSE_VALUES, False)}, default=None,
            return_dtype=pl.Boolean).alias("email_opt_in"),
        pl.when(pl.col(READ_REASON).is_not_null()).then(pl.col(READ_REASON))
          .when(pl.col("email").is_not_null() & pl.col("_email").is_null()).then(pl.lit("invalid_email"))
          .when(pl.col("phone").is_not_null() & pl.col("_phone").is_null()).then(pl.lit("invalid_phone"))
          .when(pl.col("_email").is_null() & pl.col("_phone").is_null()).then(pl.lit("no_identifier"))
          .alias(REASON),
    )


def _emails(values: pl.Series) -> pl.DataFrame:
    """Distinct addresses (`value`) and their stored form (`out`, null when invalid)."""
    lowered = values.str.to_lowercase()
    plain = lowered.str.contains(_PLAIN_EMAIL) & ~lowered.str.contains(_NOT_PLAIN_DOMAIN) \
        & (lowered.str.len_chars() <= _MAX_EMAIL) \
        & (lowered.str.split("@").list.first().str.len_chars() <= _MAX_LOCAL)
    frame = pl.DataFrame({"value": values, "lowered": lowered, "plain": plain})
    rest = frame.filter(~pl.col("plain"))
    checked = rest.with_columns(pl.col("value").map_elements(_email, return_dtype=pl.String).alias("out"))
    return pl.concat([frame.filter(pl.col("plain")).select("value", pl.col("lowered").alias("out")),
                      checked.select("value", "out")])


def _email(value: str) -> str | None:
    """The address as stored (normalised, lower-cased), or None when email-validator rejects it. Syntax only:
    no DNS look-up (`check_deliverability=False`); reserved test domains are accepted (the sandbox uses them)."""
    try:
        return validate_email(value, check_deliverability=False, test_environment=True).normalized.lower()
    except EmailNotValidError:
        return None
