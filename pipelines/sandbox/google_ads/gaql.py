"""GAQL as the sandbox understands it: parsed by sqlglot (GAQL is a SELECT dialect), checked against the v26
`GoogleAdsRow` protos, and evaluated over flat rows keyed by field path.

What a query may contain is what the real API accepts and the source sends: `SELECT <fields> FROM <resource>
[WHERE <condition> AND ...] [ORDER BY <field> [ASC|DESC], ...] [LIMIT n]`, conditions `= != < <= > >= IN
NOT IN BETWEEN` on fields with literal values (strings, numbers, TRUE/FALSE; enum constants as strings).
A field the v26 protos do not have is refused as the API refuses it (QueryError.UNRECOGNIZED_FIELD); so are
a resource outside the served ones, a field of a resource the FROM resource cannot be joined with, and
metrics or segments on a resource without them. Anything else unparseable is QueryError.UNEXPECTED_INPUT.
"""

from __future__ import annotations

import datetime as dt
import operator
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import sqlglot
from google.ads.googleads.v26.services.types.google_ads_service import GoogleAdsRow
from google.protobuf.descriptor import FieldDescriptor
from sqlglot import exp

# FROM resource -> the resources whose fields it may select (itself and the ones it is attributed to).
ATTRIBUTED: dict[str, frozenset[str]] = {
    "customer": frozenset({"customer"}),
    "customer_client": frozenset({"customer_client", "customer"}),
    "campaign": frozenset({"campaign", "customer"}),
    "ad_group": frozenset({"ad_group", "campaign", "customer"}),
    "ad_group_ad": frozenset({"ad_group_ad", "ad_group", "campaign", "customer"}),
    "ad_group_criterion": frozenset({"ad_group_criterion", "ad_group", "campaign", "customer"}),
    "change_status": frozenset({"change_status", "ad_group", "campaign", "customer"}),
}
# Resources that report metrics and may be segmented by date.
METRIC_RESOURCES = frozenset({"customer", "campaign", "ad_group", "ad_group_ad"})
SEGMENTS = frozenset({"segments.date"})

_ROW = GoogleAdsRow.pb().DESCRIPTOR


class QueryError(ValueError):
    """A query the API would refuse: `code` is the enum name of the ErrorCode field `kind` (QueryError's unless
    said), `trigger` the offending text."""

    def __init__(self, code: str, message: str, trigger: str | None = None, kind: str = "query_error") -> None:
        super().__init__(message)
        self.code, self.message, self.trigger, self.kind = code, message, trigger, kind


@dataclass(frozen=True)
class Condition:
    field: str
    op: str  # = != < <= > >= IN NOT_IN BETWEEN
    value: Any  # a scalar, a tuple for IN / NOT_IN, a (low, high) pair for BETWEEN

    def test(self, row: dict[str, Any]) -> bool:
        have = _comparable(row.get(self.field))
        if self.op == "IN":
            return have in self.value
        if self.op == "NOT_IN":
            return have not in self.value
        if self.op == "BETWEEN":
            return have is not None and self.value[0] <= have <= self.value[1]
        return have is not None and _OPS[self.op](have, self.value)


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}
_SQLGLOT_OPS = {exp.EQ: "=", exp.NEQ: "!=", exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">="}


@dataclass(frozen=True)
class Query:
    fields: tuple[str, ...]
    resource: str
    conditions: tuple[Condition, ...]
    order_by: tuple[tuple[str, bool], ...]  # (field, descending)
    limit: int | None

    @property
    def has_metrics(self) -> bool:
        return any(f.startswith("metrics.") for f in self.fields)

    @property
    def segmented_by_date(self) -> bool:
        return "segments.date" in self.fields

    def bounds(self, field: str) -> tuple[Any, Any]:
        """The lowest and highest value the conditions on `field` allow (None: unbounded), as written."""
        low = high = None
        for c in self.conditions:
            if c.field != field:
                continue
            lo, hi = {"BETWEEN": c.value, ">=": (c.value, None), ">": (c.value, None), "=": (c.value, c.value),
                      "<=": (None, c.value), "<": (None, c.value)}.get(c.op, (None, None))
            low = lo if low is None or (lo is not None and lo > low) else low
            high = hi if high is None or (hi is not None and hi < high) else high
        return low, high

    def date_range(self) -> tuple[dt.date | None, dt.date | None]:
        """The days the WHERE clause allows, from its conditions on segments.date (None: unbounded)."""
        low: dt.date | None = None
        high: dt.date | None = None
        for c in self.conditions:
            if c.field != "segments.date":
                continue
            if c.op == "BETWEEN":
                lo, hi = dt.date.fromisoformat(c.value[0]), dt.date.fromisoformat(c.value[1])
            elif c.op in (">=", ">", "="):
                lo, hi = dt.date.fromisoformat(c.value) + dt.timedelta(days=c.op == ">"), None
                hi = lo if c.op == "=" else None
            elif c.op in ("<=", "<"):
                lo, hi = None, dt.date.fromisoformat(c.value) - dt.timedelta(days=c.op == "<")
            else:
                continue
            low = lo if low is None or (lo is not None and lo > low) else low
            high = hi if high is None or (hi is not None and hi < high) else high
        return low, high

    def run(self, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Filter, order and limit; each row keeps only the selected fields."""
        kept = [r for r in rows if all(c.test(r) for c in self.conditions)]
        for name, descending in reversed(self.order_by):
            kept.sort(key=lambda r: (r.get(name) is None, _comparable(r.get(name))), reverse=descending)
        if self.limit is not None:
            kept = kept[: self.limit]
        return [{f: r.get(f) for f in self.fields} for r in kept]


def parse(text: str) -> Query:
    """Parse and check one GAQL query; QueryError as the API would answer."""
    try:
        tree = sqlglot.parse_one(text, error_level=sqlglot.ErrorLevel.RAISE)
    except sqlglot.errors.ParseError as exc:
        raise QueryError("UNEXPECTED_INPUT", f"Error in query: unexpected input {_first_error(exc)}.") from None
    if not isinstance(tree, exp.Select):
        raise QueryError("EXPECTED_SELECT", "Error in query: expected SELECT.")
    source = tree.args.get("from_") or tree.args.get("from")
    if source is None or not isinstance(source.this, exp.Table):
        raise QueryError("EXPECTED_FROM", "Error in query: expected FROM.")
    resource = source.this.name
    if resource not in ATTRIBUTED:
        raise QueryError("BAD_RESOURCE_TYPE_IN_FROM_CLAUSE",
                         f"Error in query: invalid resource type in FROM clause: '{resource}'.", resource)
    if tree.args.get("joins") or tree.args.get("group"):
        raise QueryError("UNEXPECTED_INPUT", "Error in query: unexpected input JOIN/GROUP BY.")
    fields = tuple(_field(e) for e in tree.expressions)
    for name in fields:
        _check_field(name, resource)
    conditions = tuple(_conditions(tree.args.get("where"), resource))
    order = tree.args.get("order")
    order_by = tuple((_field(o.this), bool(o.args.get("desc"))) for o in (order.expressions if order else []))
    for name, _ in order_by:
        _check_field(name, resource)
        if name not in fields:
            raise QueryError("EXPECTED_REFERENCED_FIELD_IN_SELECT_CLAUSE",
                             f"Error in query: the ORDER BY field '{name}' must be selected.", name)
    limit_node = tree.args.get("limit")
    limit = int(limit_node.expression.this) if limit_node is not None else None
    if limit is not None and limit <= 0:
        raise QueryError("LIMIT_VALUE_TOO_LOW", "Error in query: the LIMIT value is too low.")
    return Query(fields, resource, conditions, order_by, limit)


def _first_error(exc: sqlglot.errors.ParseError) -> str:
    errors = getattr(exc, "errors", None) or [{}]
    return repr(errors[0].get("highlight") or "")


def _field(node: exp.Expression) -> str:
    if isinstance(node, exp.Column):
        return ".".join(part.name for part in node.parts)
    if isinstance(node, exp.Dot):
        return ".".join(part.name for part in node.parts)
    raise QueryError("BAD_FIELD_NAME", f"Error in query: expected a field name, got '{node.sql()}'.", node.sql())


def _check_field(name: str, resource: str) -> None:
    """Refuse what the API refuses: unknown to the protos, of a resource not attributed to `resource`,
    metrics or segments where there are none."""
    if not _known(name):
        raise QueryError("UNRECOGNIZED_FIELD", f"Unrecognized field in the query: '{name}'.", name)
    head = name.split(".", 1)[0]
    if head == "metrics":
        if resource not in METRIC_RESOURCES:
            raise QueryError("PROHIBITED_METRIC_IN_SELECT_OR_WHERE_CLAUSE",
                             f"Cannot select or filter on the following metrics: '{name}' (could not support "
                             f"requested resources: '{resource.upper()}').", name)
    elif head == "segments":
        if resource not in METRIC_RESOURCES or name not in SEGMENTS:
            raise QueryError("PROHIBITED_SEGMENT_IN_SELECT_OR_WHERE_CLAUSE",
                             f"Cannot select or filter on the following segments: '{name}'.", name)
    elif head not in ATTRIBUTED[resource]:
        raise QueryError("PROHIBITED_RESOURCE_TYPE_IN_SELECT_CLAUSE",
                         f"Cannot select fields from the following resource: '{head}', since the resource is "
                         f"incompatible with the resource in the FROM clause.", name)


def _known(name: str) -> bool:
    """Whether `name` is a scalar (or enum) field path of the v26 GoogleAdsRow."""
    descriptor = _ROW
    parts = name.split(".")
    for i, part in enumerate(parts):
        field = proto_field(descriptor, part)
        if field is None:
            return False
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if i == len(parts) - 1:
                return False  # a message is not selectable as a whole
            descriptor = field.message_type
        elif i != len(parts) - 1:
            return False
    return True


def proto_field(descriptor: Any, name: str) -> FieldDescriptor | None:
    """The protobuf field a GAQL name part denotes: the generated protos rename the fields that are Python
    builtins (`ad_group.type` is `type_`)."""
    return descriptor.fields_by_name.get(name) or descriptor.fields_by_name.get(f"{name}_")


def _conditions(where: exp.Where | None, resource: str) -> Iterable[Condition]:
    if where is None:
        return
    stack = [where.this]
    found: list[Condition] = []
    while stack:
        node = stack.pop()
        if isinstance(node, exp.And):
            stack += [node.expression, node.this]
            continue
        if isinstance(node, exp.Paren):
            stack.append(node.this)
            continue
        found.append(_condition(node, resource))
    yield from found


def _condition(node: exp.Expression, resource: str) -> Condition:
    negated = isinstance(node, exp.Not)
    inner = node.this if negated else node
    if isinstance(inner, exp.In):
        name = _field(inner.this)
        _check_field(name, resource)
        values = tuple(_literal(v) for v in inner.expressions)
        if not values:
            raise QueryError("PROHIBITED_EMPTY_LIST_IN_CONDITION", "Error in query: empty list in condition.", name)
        return Condition(name, "NOT_IN" if negated else "IN", values)
    if negated:
        raise QueryError("BAD_OPERATOR", f"Error in query: unsupported operator in '{node.sql()}'.", node.sql())
    if isinstance(inner, exp.Between):
        name = _field(inner.this)
        _check_field(name, resource)
        low, high = _literal(inner.args["low"]), _literal(inner.args["high"])
        if name == "segments.date":
            low, high = _date(low), _date(high)
        return Condition(name, "BETWEEN", (low, high))
    op = _SQLGLOT_OPS.get(type(inner))
    if op is None:
        raise QueryError("BAD_OPERATOR", f"Error in query: unsupported operator in '{inner.sql()}'.", inner.sql())
    name = _field(inner.this)
    _check_field(name, resource)
    value = _literal(inner.expression)
    if name == "segments.date":
        value = _date(value)
    return Condition(name, op, value)


def _literal(node: exp.Expression) -> Any:
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        number = float(node.this)
        return int(number) if number.is_integer() else number
    if isinstance(node, exp.Neg):
        return -_literal(node.this)
    raise QueryError("BAD_VALUE", f"Error in query: expected a literal value, got '{node.sql()}'.", node.sql())


def _date(value: Any) -> str:
    try:
        return dt.date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise QueryError("INVALID_DATE_FORMAT", f"Error in query: invalid date '{value}'.", str(value)) from None


def _comparable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value
