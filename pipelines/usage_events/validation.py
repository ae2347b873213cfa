"""The validating SELECT: every line in, one typed row out, with the first broken rule as its reason.

Built from the compiled contract, so the SQL follows the schema file. A line fails on the first rule it
breaks, in this order: a defect found while reading the file (not UTF-8, too long to parse, the cut of a
truncated file: the `defect` column, set by the reader), empty, not JSON, then the contract's checks in schema
order, then the plausibility of its timestamp, then whether the platform knows its workspace. Reasons name
rules and fields, never values, so they are safe to show.
"""

from __future__ import annotations

from pipelines.usage_events.contract import Check, CompiledContract

_TEXT_FIELDS = ("event_id", "event_type", "device_id", "ip", "user_agent", "url", "referrer")
# Fields kept from a quarantined line too, when they are strings: they attribute the line to a workspace
# and a data subject, so that erasure and the workspace's key reach it.
_ATTRIBUTION_FIELDS = ("workspace_id", "user_id", "anonymous_id")


def _sql_list(values: list[str]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def validation_select(
    contract: CompiledContract, source: str, earliest_event: str, max_skew_days: int, known_workspaces: str
) -> str:
    """SELECT over `source` (file_id, received_date, line_no, line, defect, defect_detail) giving one parsed row
    per line; `known_workspaces` is a table of the workspace ids the platform knows."""
    col = {name: contract.index(name) for name in (*_TEXT_FIELDS, *_ATTRIBUTION_FIELDS, "occurred_at",
                                                  "properties", "consent.analytics", "consent.ads")}
    v = contract.text_sql
    occurred = f"try_cast(upper({v('occurred_at')}) AS TIMESTAMPTZ)"  # RFC 3339 allows t and z
    checks: list[Check] = [
        Check("empty_line", "the line is empty", "trim(line) = ''"),
        Check("broken_json", "the line is not valid JSON", "NOT is_json"),
        *contract.checks,
        Check(
            "implausible_timestamp",
            f"occurred_at before {earliest_event} or more than {max_skew_days} day(s) after its landing day",
            f"{occurred} < TIMESTAMPTZ '{earliest_event} 00:00:00+00' "
            f"OR {occurred} >= CAST(received_date + INTERVAL {max_skew_days + 1} DAY AS TIMESTAMPTZ)",
        ),
        Check("unknown_workspace", "workspace_id (not a workspace the platform knows)",
              f"{v('workspace_id')} NOT IN (SELECT workspace_id FROM {known_workspaces})"),
    ]
    case = "CASE WHEN defect IS NOT NULL THEN 0 " + " ".join(f"WHEN {c.failed} THEN {i + 1}" for i, c in enumerate(checks)) + " END"
    codes = _sql_list([c.code for c in checks])
    details = _sql_list([c.detail for c in checks])
    valid_only = "CASE WHEN check_no IS NULL THEN {expr} END AS {name}"
    text = [valid_only.format(expr=v(f), name=f) for f in _TEXT_FIELDS]
    attribution = [f"CASE WHEN T[{col[f]}] = 'VARCHAR' THEN {v(f)} END AS {f}" for f in _ATTRIBUTION_FIELDS]
    consent = [
        valid_only.format(expr=f"{v('consent.' + k)}::BOOLEAN", name=f"consent_{k}") for k in ("analytics", "ads")
    ]
    return f"""
        SELECT file_id, received_date, line_no,
               CASE WHEN check_no = 0 THEN defect ELSE {codes}[check_no] END AS reason,
               CASE WHEN check_no = 0 THEN defect_detail ELSE {details}[check_no] END AS reason_detail,
               CASE WHEN check_no IS NOT NULL THEN line END AS line,
               {', '.join(text)},
               {', '.join(attribution)},
               {valid_only.format(expr=occurred, name='occurred_at')},
               {valid_only.format(expr=f"CASE WHEN T[{col['properties']}] = 'OBJECT' THEN {v('properties')} END", name='properties')},
               {', '.join(consent)}
        FROM (
            SELECT *, {case} AS check_no
            FROM (
                SELECT *,
                       CASE WHEN is_json THEN json_type(line, {contract.paths_sql}) END AS T,
                       CASE WHEN is_json THEN json_extract_string(line, {contract.value_paths_sql}) END AS V
                FROM (SELECT *, json_valid(line) AS is_json FROM {source})
            )
        )
    """
