"""The usage-event contract and its compilation into DuckDB SQL.

The contract is a JSON Schema file checked into the repo. Validating a million lines one by one in Python
(jsonschema, fastjsonschema) costs seconds per million; instead the schema is compiled once into SQL
expressions that DuckDB evaluates over whole batches in parallel. Each line is parsed twice, whatever the
number of fields: one `json_type(line, [paths])` gives every field's JSON type (NULL when the key is
missing, 'NULL' when it holds null, so JSON Schema's missing/null distinction survives) and one
`json_extract_string(line, [paths])` gives every field's text. The checks then index those two lists,
`T[i]` and `V[i - 1]`. The compiler supports the subset of JSON Schema the contract uses and refuses anything
else at import time, so the SQL never silently disagrees with the schema (tests also compare it line by
line with the reference validator).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

CONTRACT_VERSION = "1-0-0"
CONTRACT_PATH = Path(__file__).parent / "contract" / f"usage_event-{CONTRACT_VERSION}.json"

# RFC 3339 date-time with a mandatory offset; calendar validity is checked by DuckDB's cast.
_RFC3339 = (
    r"^\d{4}-\d{2}-\d{2}[Tt]([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)$"
)
_JSON_TYPES = {
    "string": ("VARCHAR",),
    "boolean": ("BOOLEAN",),
    "object": ("OBJECT",),
    "array": ("ARRAY",),
    "integer": ("BIGINT", "UBIGINT"),
    "number": ("BIGINT", "UBIGINT", "DOUBLE"),
    "null": ("NULL",),
}
_ANNOTATIONS = {"$schema", "$id", "title", "description", "examples", "default", "$comment"}
_SUPPORTED = _ANNOTATIONS | {
    "type", "properties", "required", "additionalProperties", "anyOf", "pattern",
    "minLength", "maxLength", "format", "enum",
}


class ContractError(ValueError):
    """The contract uses JSON Schema that the SQL validator cannot enforce exactly."""


@dataclass(frozen=True)
class Check:
    """One rule: when `failed` (a SQL boolean) is true the line is quarantined with `code` and `detail`."""

    code: str
    detail: str
    failed: str


@dataclass(frozen=True)
class _Value:
    """A JSON value inside the line, by its position in the path lists."""

    path: str
    index: int

    @property
    def jtype(self) -> str:
        """Its JSON type: NULL when the key is missing, 'NULL' when it holds null."""
        return f"T[{self.index}]"

    @property
    def text(self) -> str:
        """Its text: a string's value unescaped, any other value as JSON. `V` leaves out the root (the
        whole line, never needed as text and the costliest to copy), hence the shifted index."""
        if self.index == 1:
            raise ContractError("the root has no text value")
        return f"V[{self.index - 1}]"


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# IPv4 as Python's ipaddress accepts it (no leading zeros, ASCII digits): exact, and far cheaper than a UDF.
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4_BODY = rf"{_OCTET}(\.{_OCTET}){{3}}"
_IPV4 = rf"^{_IPV4_BODY}$"


def _ipv6_pattern() -> str:
    """IPv6 as Python's ipaddress accepts it without a zone id: RFC 3986's IPv6address grammar, whose `::`
    stands for at least one group and whose embedded IPv4 has no leading zeros, exactly as jsonschema's format
    checker rules (a test compares the two on edge cases and a large random sample). A regular expression keeps
    the check inside DuckDB: a Python UDF costs about a second and a half per million lines in call overhead."""
    h16 = "[0-9A-Fa-f]{1,4}"
    ls32 = f"({h16}:{h16}|{_IPV4_BODY})"

    def upto(n: int) -> str:
        """Up to n+1 groups before a `::` (or none)."""
        return f"(({h16}:){{0,{n}}}{h16})?"

    forms = [
        f"({h16}:){{6}}{ls32}",
        f"::({h16}:){{5}}{ls32}",
        f"({h16})?::({h16}:){{4}}{ls32}",
        f"{upto(1)}::({h16}:){{3}}{ls32}",
        f"{upto(2)}::({h16}:){{2}}{ls32}",
        f"{upto(3)}::{h16}:{ls32}",
        f"{upto(4)}::{ls32}",
        f"{upto(5)}::{h16}",
        f"{upto(6)}::",
    ]
    return "^(" + "|".join(forms) + ")$"


# Formats checked in SQL, each exactly as jsonschema's format checker rules (tests compare them).
FORMAT_PATTERNS = {"ipv4": _IPV4, "ipv6": _ipv6_pattern()}


@dataclass
class _Compiler:
    paths: list[str] = field(default_factory=lambda: ["$"])
    checks: list[Check] = field(default_factory=list)

    def value(self, path: str) -> _Value:
        """The value at a dotted field path, registering its JSON path once."""
        json_path = "$" + "".join("." + json.dumps(part) for part in path.split(".")) if path else "$"
        if json_path not in self.paths:
            self.paths.append(json_path)
        return _Value(path, self.paths.index(json_path) + 1)

    def compile_root(self, schema: dict[str, Any]) -> list[Check]:
        if schema.get("type") != "object":
            raise ContractError("the contract's root must be an object")
        root = self.value("")
        self.checks.append(Check("not_an_object", "the line is not a JSON object", f"{root.jtype} <> 'OBJECT'"))
        self._schema({k: v for k, v in schema.items() if k != "type"}, root)
        return self.checks

    def _validity(self, schema: dict[str, Any], value: _Value) -> str:
        """A SQL boolean: `value` satisfies `schema` (an anyOf branch)."""
        sub = _Compiler(paths=self.paths)
        sub._schema(schema, value)
        if not sub.checks:
            return "TRUE"
        return "NOT (" + " OR ".join(f"coalesce({c.failed}, FALSE)" for c in sub.checks) + ")"

    def _schema(self, schema: dict[str, Any], value: _Value) -> None:
        """Compile `schema` for `value`; every check holds only when the value is present, as in JSON Schema."""
        unknown = set(schema) - _SUPPORTED
        if unknown:
            raise ContractError(f"{value.path or '<root>'}: unsupported JSON Schema keywords {sorted(unknown)}")
        types = schema.get("type")
        type_list = [types] if isinstance(types, str) else list(types or [])
        for name in type_list:
            if name not in _JSON_TYPES:
                raise ContractError(f"{value.path}: unknown type {name!r}")
        if type_list:
            allowed = ", ".join(_sql_str(t) for name in type_list for t in _JSON_TYPES[name])
            self.checks.append(Check("wrong_type", f"{value.path} (expected {' or '.join(type_list)})",
                                     f"{value.jtype} NOT IN ({allowed})"))
        if "anyOf" in schema:
            branches = [self._validity(branch, value) for branch in schema["anyOf"]]
            fields = sorted({r for b in schema["anyOf"] for r in b.get("required", [])})
            detail = f"one of {', '.join(fields)} must be set" if fields else f"{value.path} (no alternative matches)"
            code = "missing_field" if fields else "bad_format"
            self.checks.append(Check(code, detail, f"{value.jtype} IS NOT NULL AND NOT ({' OR '.join(branches)})"))
        self._string(schema, value)
        if "properties" in schema or "required" in schema or "additionalProperties" in schema:
            self._object(schema, value)

    def _string(self, schema: dict[str, Any], value: _Value) -> None:
        if not {"pattern", "minLength", "maxLength", "enum", "format"} & set(schema):
            return
        is_string = f"{value.jtype} = 'VARCHAR'"
        text = value.text
        if "pattern" in schema:
            pattern = _sql_str(schema["pattern"])
            self.checks.append(Check("bad_format", f"{value.path} (pattern)",
                                     f"{is_string} AND NOT regexp_matches({text}, {pattern})"))
        if "minLength" in schema:
            self.checks.append(Check("bad_format", f"{value.path} (too short)",
                                     f"{is_string} AND length({text}) < {int(schema['minLength'])}"))
        if "maxLength" in schema:
            self.checks.append(Check("bad_format", f"{value.path} (too long)",
                                     f"{is_string} AND length({text}) > {int(schema['maxLength'])}"))
        if "enum" in schema:
            if not all(isinstance(v, str) for v in schema["enum"]):
                raise ContractError(f"{value.path}: only string enums are supported")
            options = ", ".join(_sql_str(v) for v in schema["enum"])
            self.checks.append(Check("bad_format", f"{value.path} (not an accepted value)",
                                     f"{is_string} AND {text} NOT IN ({options})"))
        fmt = schema.get("format")
        if fmt is None:
            return
        if fmt == "date-time":
            ok = f"regexp_full_match({text}, {_sql_str(_RFC3339)}) AND try_cast(upper({text}) AS TIMESTAMPTZ) IS NOT NULL"
        elif fmt in FORMAT_PATTERNS:
            ok = f"regexp_full_match({text}, {_sql_str(FORMAT_PATTERNS[fmt])})"
        else:
            raise ContractError(f"{value.path}: unsupported format {fmt!r}")
        self.checks.append(Check("bad_format", f"{value.path} (format {fmt})", f"{is_string} AND NOT ({ok})"))

    def _object(self, schema: dict[str, Any], value: _Value) -> None:
        properties: dict[str, Any] = schema.get("properties", {})
        required = schema.get("required", [])
        unknown_required = set(required) - set(properties)
        if unknown_required:
            raise ContractError(f"{value.path or '<root>'}: required fields {sorted(unknown_required)} have no schema")
        is_object = f"{value.jtype} = 'OBJECT'"
        if schema.get("additionalProperties") is False:
            known = ", ".join(_sql_str(k) for k in properties)
            # A nested object's keys come from its extracted text (a tiny parse), not from the whole line.
            keys = "json_keys(line)" if not value.path else f"json_keys({value.text})"
            # A filter with IN over the constant names costs a third of list_has_all([...], keys).
            self.checks.append(Check("unknown_field", f"{value.path or 'event'} has a field outside the contract",
                                     f"{is_object} AND len(list_filter({keys}, lambda k: k NOT IN ({known}))) > 0"))
        elif "additionalProperties" in schema:
            raise ContractError(f"{value.path}: only additionalProperties: false is supported")
        for name in required:
            child = self.value(f"{value.path}.{name}" if value.path else name)
            self.checks.append(Check("missing_field", child.path, f"{is_object} AND {child.jtype} IS NULL"))
        for name, sub in properties.items():
            self._schema(sub, self.value(f"{value.path}.{name}" if value.path else name))


@dataclass(frozen=True)
class CompiledContract:
    """The contract as SQL: the JSON paths read from each line and the ordered checks over them."""

    schema: dict[str, Any]
    paths: tuple[str, ...]
    checks: tuple[Check, ...]

    def index(self, field_path: str) -> int:
        """1-based position of a dotted field path in `T` and `V`."""
        json_path = "$" + "".join("." + json.dumps(part) for part in field_path.split("."))
        return self.paths.index(json_path) + 1

    @property
    def paths_sql(self) -> str:
        """The paths whose JSON types make `T` (the root first)."""
        return "[" + ", ".join(_sql_str(p) for p in self.paths) + "]"

    @property
    def value_paths_sql(self) -> str:
        """The paths whose texts make `V`: all but the root."""
        return "[" + ", ".join(_sql_str(p) for p in self.paths[1:]) + "]"

    def text_sql(self, field_path: str) -> str:
        """SQL for the text of a dotted field path."""
        return _Value(field_path, self.index(field_path)).text


@lru_cache(maxsize=None)
def load_contract(path: Path = CONTRACT_PATH) -> CompiledContract:
    """Read and compile the contract; a schema the compiler cannot enforce raises ContractError here."""
    schema = json.loads(path.read_text())
    compiler = _Compiler()
    checks = compiler.compile_root(schema)
    return CompiledContract(schema=schema, paths=tuple(compiler.paths), checks=tuple(checks))
