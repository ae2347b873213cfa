"""The retention policy file, read and checked against the tables the sources declare.

Privacy rules are data: `retention_policy.toml` beside this module says, per table, how long records are
kept, which column's age counts, what happens at expiry and which provider term that comes from. It is
checked when the Dagster definitions load, so a typo in a table, column, action or term is an error on
the engineer's screen, not a silent no-op at 3 a.m.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from dlt.common.schema.typing import TTableSchemaColumns

from pipelines.privacy.categories import declaration

POLICY_PATH = Path(__file__).with_name("retention_policy.toml")
ACTIONS = ("delete", "anonymise")
LANDED_ACTIONS = ("archive", "delete")
TRUNCATE_UNITS = ("hour", "day", "month")
_AGE_TYPES = ("date", "timestamp")
_RULE_KEYS = {"table", "term", "age_column", "keep_days", "action", "clear", "truncate"}
_TERM_KEYS = {"provider", "source", "text"}
_LANDED_KEYS = {"zone", "term", "clear_days", "action", "archive_days"}


class PolicyError(ValueError):
    """The retention policy file is not valid; the message names the file, the rule and the problem."""


@dataclass(frozen=True)
class Term:
    """A provider's (or our own) retention term that rules cite."""

    id: str
    provider: str
    source: str
    text: str


@dataclass(frozen=True)
class Rule:
    """How long one table keeps records, and what happens to those older."""

    table: str
    term: Term
    age_column: str
    keep_days: int
    action: str
    age_is_timestamp: bool
    clear: tuple[str, ...] = ()
    truncate: Mapping[str, str] = field(default_factory=dict)

    @property
    def dataset(self) -> str:
        return self.table.split(".", 1)[0]

    @property
    def name(self) -> str:
        return self.table.split(".", 1)[1]


@dataclass(frozen=True)
class LandedRule:
    """How long a landing zone's files stay in the clear after they are loaded, and what happens then:
    `archive` (encrypted per person, kept `archive_days` after arrival) or `delete`."""

    zone: str
    term: Term
    clear_days: int
    action: str
    archive_days: int | None = None


@dataclass(frozen=True)
class RetentionPolicy:
    terms: dict[str, Term]
    rules: tuple[Rule, ...]
    landed: tuple[LandedRule, ...] = ()


def load_policy(
    tables: Mapping[str, TTableSchemaColumns], path: Path = POLICY_PATH, zones: Iterable[str] | None = None
) -> RetentionPolicy:
    """Read `path` and check every rule against `tables` (`<dataset>.<table>` → declared columns) and every
    `[[landed]]` rule against `zones` (default: the catalogue's landing zones)."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read the retention policy: {exc}") from None
    unknown = set(raw) - {"terms", "rule", "landed"}
    if unknown:
        raise PolicyError(f"{path}: unknown section(s) {sorted(unknown)}; expected [terms.<id>], [[rule]] "
                          "and [[landed]]")
    terms = {}
    for term_id, body in raw.get("terms", {}).items():
        _check_keys(path, f"term {term_id!r}", body, _TERM_KEYS, _TERM_KEYS)
        terms[term_id] = Term(term_id, body["provider"], body["source"], body["text"])
    rules: list[Rule] = []
    for i, body in enumerate(raw.get("rule", []), start=1):
        where = f"rule #{i} ({body.get('table', '?')})"
        _check_keys(path, where, body, _RULE_KEYS, {"table", "term", "age_column", "keep_days", "action"})
        rules.append(_rule(path, where, body, terms, tables))
    seen: set[str] = set()
    for rule in rules:
        if rule.table in seen:
            raise PolicyError(f"{path}: table {rule.table!r} has more than one rule")
        seen.add(rule.table)
    ungoverned = sorted(t for t, cols in tables.items() if declaration(cols).has_personal_data and t not in seen)
    if ungoverned:
        raise PolicyError(f"{path}: table(s) {ungoverned} declare personal data but have no retention rule")
    return RetentionPolicy(terms, tuple(rules), _landed_rules(path, raw.get("landed", []), terms, zones))


def _landed_rules(path: Path, bodies: list, terms: dict[str, Term], zones: Iterable[str] | None) -> tuple[LandedRule, ...]:
    """The `[[landed]]` rules, one per landing zone: a zone without one is an error, like a table."""
    if zones is None:
        from pipelines.catalog import LANDING_ZONES

        zones = [zone.name for zone in LANDING_ZONES]
    known = set(zones)
    rules: dict[str, LandedRule] = {}
    for i, body in enumerate(bodies, start=1):
        where = f"landed rule #{i} ({body.get('zone', '?') if isinstance(body, Mapping) else '?'})"
        required = {"zone", "term", "clear_days", "action"} | ({"archive_days"} if body.get("action") == "archive" else set())
        _check_keys(path, where, body, _LANDED_KEYS, required)
        problem = None
        if body["zone"] not in known:
            problem = f"unknown landing zone {body['zone']!r}; zones: {sorted(known)}"
        elif body["zone"] in rules:
            problem = "this zone has more than one landed rule"
        elif body["term"] not in terms:
            problem = f"unknown term {body['term']!r}; terms in this file: {sorted(terms)}"
        elif body["action"] not in LANDED_ACTIONS:
            problem = f"unknown action {body['action']!r}; allowed: {list(LANDED_ACTIONS)}"
        elif not _whole_days(body["clear_days"], 0):
            problem = f"clear_days must be a whole number of days >= 0, not {body['clear_days']!r}"
        elif body["action"] == "delete" and "archive_days" in body:
            problem = "archive_days applies to action 'archive' only"
        elif body["action"] == "archive" and not _whole_days(body["archive_days"], body["clear_days"] + 1):
            problem = f"archive_days must be a whole number of days above clear_days, not {body['archive_days']!r}"
        if problem:
            raise PolicyError(f"{path}: {where}: {problem}")
        rules[body["zone"]] = LandedRule(body["zone"], terms[body["term"]], body["clear_days"], body["action"],
                                         body.get("archive_days"))
    missing = sorted(known - set(rules))
    if missing:
        raise PolicyError(f"{path}: landing zone(s) {missing} hold personal data but have no [[landed]] rule")
    return tuple(rules.values())


def _whole_days(value: object, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _check_keys(path: Path, where: str, body: Mapping, allowed: set[str], required: set[str]) -> None:
    if not isinstance(body, Mapping):
        raise PolicyError(f"{path}: {where} must be a table of keys")
    unknown, missing = set(body) - allowed, required - set(body)
    if unknown:
        raise PolicyError(f"{path}: {where} has unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    if missing:
        raise PolicyError(f"{path}: {where} is missing {sorted(missing)}")


def _rule(
    path: Path, where: str, body: Mapping, terms: dict[str, Term], tables: Mapping[str, TTableSchemaColumns]
) -> Rule:
    def fail(problem: str) -> PolicyError:
        return PolicyError(f"{path}: {where}: {problem}")

    table = body["table"]
    if table not in tables:
        raise fail(f"unknown table {table!r}; governed tables: {sorted(tables)}")
    columns = tables[table]
    if body["term"] not in terms:
        raise fail(f"unknown term {body['term']!r}; terms in this file: {sorted(terms)}")
    if body["action"] not in ACTIONS:
        raise fail(f"unknown action {body['action']!r}; allowed: {list(ACTIONS)}")
    keep = body["keep_days"]
    if not isinstance(keep, int) or isinstance(keep, bool) or keep < 1:
        raise fail(f"keep_days must be a whole number of days >= 1, not {keep!r}")
    age = body["age_column"]
    if columns.get(age, {}).get("data_type") not in _AGE_TYPES:
        raise fail(f"age_column {age!r} is not a date or timestamp column of {table}")
    clear = tuple(body.get("clear", ()))
    truncate = dict(body.get("truncate", {}))
    if body["action"] == "delete" and (clear or truncate):
        raise fail("`clear` and `truncate` apply to action 'anonymise' only")
    for column in clear:
        if column not in columns:
            raise fail(f"clear names unknown column {column!r} of {table}")
        if not columns[column].get("nullable", True):
            raise fail(f"clear names column {column!r}, which is NOT NULL in {table}")
    for column, unit in truncate.items():
        if columns.get(column, {}).get("data_type") not in _AGE_TYPES:
            raise fail(f"truncate names {column!r}, which is not a date or timestamp column of {table}")
        if unit not in TRUNCATE_UNITS:
            raise fail(f"truncate unit {unit!r} for {column!r} is not one of {list(TRUNCATE_UNITS)}")
    if body["action"] == "anonymise":
        decl = declaration(columns)
        personal = [*decl.encrypted, *decl.blind_indexes, *([decl.subject_ref] if decl.subject_ref else [])]
        not_null = [c for c in personal if not columns[c].get("nullable", True)]
        if not_null:
            raise fail(f"cannot anonymise: personal column(s) {not_null} are NOT NULL")
    return Rule(table, terms[body["term"]], age, keep, body["action"],
                columns[age]["data_type"] == "timestamp", clear, truncate)
