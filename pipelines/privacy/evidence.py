"""The privacy policy's promises tied to the checks that prove them: `policy_evidence.toml`, its verdicts, and
the three ways they are shown (a Markdown table for Dagster, rows for the warehouse, an HTML page for auditors).

The file names checks by pattern; the asset resolves them against the checks that exist and passes in their
latest results, so nothing here knows Dagster. Verdicts: kept (every check's latest result passed), broken
(one failed, or a pattern names no check), not yet evidenced (no check named, or one never ran).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import html
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

EVIDENCE_PATH = Path(__file__).with_name("policy_evidence.toml")
KEPT, BROKEN, NOT_EVIDENCED = "kept", "broken", "not yet evidenced"
_KEYS = {"id", "sections", "quote", "claim", "checks", "pending"}


class EvidenceError(ValueError):
    """The evidence file is not valid; the message names the file, the promise and the problem."""


@dataclass(frozen=True)
class Promise:
    id: str
    sections: tuple[str, ...]
    quote: str
    claim: str
    checks: tuple[str, ...]  # "<asset key path>:<check name>" patterns
    pending: str = ""


@dataclass(frozen=True)
class CheckResult:
    """The latest result of one check: `passed` None when it never ran to an end."""

    name: str  # "<asset key path>:<check name>"
    passed: bool | None
    at: dt.datetime | None


@dataclass
class Finding:
    promise: Promise
    verdict: str
    results: list[CheckResult] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)  # patterns naming no existing check

    @property
    def latest_at(self) -> dt.datetime | None:
        times = [r.at for r in self.results if r.at]
        return max(times) if times else None


def load_promises(path: Path = EVIDENCE_PATH) -> list[Promise]:
    """Read and validate the file: every field present and typed, ids unique, `pending` only without checks."""
    try:
        entries = tomllib.loads(path.read_text(encoding="utf-8")).get("promise", [])
    except tomllib.TOMLDecodeError as exc:
        raise EvidenceError(f"{path.name}: {exc}") from None
    promises, seen = [], set()
    for n, entry in enumerate(entries, 1):
        where = f"{path.name}, promise {entry.get('id') or n}"
        if unknown := set(entry) - _KEYS:
            raise EvidenceError(f"{where}: unknown field(s) {sorted(unknown)}")
        missing = [k for k in ("id", "sections", "quote", "claim", "checks") if k not in entry]
        if missing:
            raise EvidenceError(f"{where}: missing {missing}")
        if not all(isinstance(v, str) for v in (*entry["sections"], *entry["checks"])):
            raise EvidenceError(f"{where}: sections and checks are lists of strings")
        if any(":" not in c for c in entry["checks"]):
            raise EvidenceError(f"{where}: a check is named '<asset key path>:<check name>'")
        if entry["id"] in seen:
            raise EvidenceError(f"{where}: id used twice")
        if entry.get("pending") and entry["checks"]:
            raise EvidenceError(f"{where}: `pending` is for promises without checks")
        seen.add(entry["id"])
        promises.append(Promise(id=entry["id"], sections=tuple(entry["sections"]), quote=entry["quote"],
                                claim=entry["claim"], checks=tuple(entry["checks"]), pending=entry.get("pending", "")))
    if not promises:
        raise EvidenceError(f"{path.name}: no [[promise]]")
    return promises


def resolve(promises: Iterable[Promise], existing: Iterable[str]) -> dict[str, tuple[list[str], list[str]]]:
    """Per promise id: (the existing checks its patterns name, sorted; its patterns that name none)."""
    names = sorted(existing)
    out = {}
    for promise in promises:
        matched = {n for p in promise.checks for n in fnmatch.filter(names, p)}
        out[promise.id] = (sorted(matched), [p for p in promise.checks if not fnmatch.filter(names, p)])
    return out


def judge(promises: Iterable[Promise], existing: Iterable[str], latest: Mapping[str, CheckResult]) -> list[Finding]:
    """A verdict per promise from the checks that exist and their latest results (`latest` by check name)."""
    promises = list(promises)
    findings = []
    for promise in promises:
        matched, unmatched = resolve([promise], existing)[promise.id]
        results = [latest.get(name, CheckResult(name, None, None)) for name in matched]
        if unmatched or any(r.passed is False for r in results):
            verdict = BROKEN
        elif not results or any(r.passed is None for r in results):
            verdict = NOT_EVIDENCED
        else:
            verdict = KEPT
        findings.append(Finding(promise, verdict, results, unmatched))
    return findings


def _status(result: CheckResult) -> str:
    return {True: "passed", False: "failed", None: "never ran"}[result.passed]


def _time(moment: dt.datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else ""


def rows(findings: list[Finding], evaluated_at: dt.datetime) -> list[dict]:
    """One warehouse row per promise (plain text and counts; no personal data exists here)."""
    return [{
        "promise_id": f.promise.id, "sections": ", ".join(f.promise.sections), "quote": f.promise.quote,
        "claim": f.promise.claim, "verdict": f.verdict, "checks": len(f.results),
        "checks_passed": sum(r.passed is True for r in f.results),
        "checks_failed": sum(r.passed is False for r in f.results),
        "checks_never_ran": sum(r.passed is None for r in f.results),
        "missing_checks": ", ".join(f.unmatched), "pending": f.promise.pending,
        "latest_check_at": f.latest_at, "evaluated_at": evaluated_at,
    } for f in findings]


def _summary(f: Finding) -> str:
    """The checks of a promise in a line: counts by status, then what is missing or pending."""
    parts = [f"{sum(r.passed is True for r in f.results)}/{len(f.results)} passed"] if f.results else []
    parts += [f"{sum(r.passed is False for r in f.results)} failed"] if any(r.passed is False for r in f.results) else []
    parts += [f"missing: {', '.join(f.unmatched)}"] if f.unmatched else []
    parts += [f"pending: {f.promise.pending}"] if f.promise.pending else []
    return "; ".join(parts) or "no check"


def markdown(findings: list[Finding]) -> str:
    """The table shown in the asset's materialisation: one line per promise."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")
    lines = ["| § | promise | verdict | checks | latest result |", "|---|---|---|---|---|"]
    for f in findings:
        lines.append(f"| {', '.join(f.promise.sections)} | {cell(f.promise.claim)} | **{f.verdict}** | "
                     f"{cell(_summary(f))} | {_time(f.latest_at)} |")
    return "\n".join(lines)


_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em;color:#1d2433}
h1{font-size:1.4em} table{border-collapse:collapse;width:100%} th,td{border:1px solid #ccd;padding:.4em;
vertical-align:top;text-align:left} th{background:#eef} blockquote{margin:0 0 .4em;color:#555;font-style:italic}
.kept{background:#e3f6e3} .broken{background:#fbe1e1} .not-yet-evidenced{background:#fff4d6}
ul{margin:0;padding-left:1.2em} code{font-size:.9em}
"""


def html_page(findings: list[Finding], evaluated_at: dt.datetime) -> str:
    """A self-contained page (no script, no external resource) an auditor can be handed."""
    e = html.escape
    counts = {v: sum(f.verdict == v for f in findings) for v in (KEPT, BROKEN, NOT_EVIDENCED)}
    body = []
    for f in findings:
        checks = "".join(f"<li><code>{e(r.name)}</code>: {_status(r)} {e(_time(r.at))}</li>" for r in f.results)
        checks += "".join(f"<li><code>{e(p)}</code>: no such check</li>" for p in f.unmatched)
        checks += f"<li>pending: {e(f.promise.pending)}</li>" if f.promise.pending else ""
        body.append(f'<tr class="{f.verdict.replace(" ", "-")}" id="{e(f.promise.id)}"><td>{e(", ".join(f.promise.sections))}</td>'
                    f"<td><blockquote>{e(f.promise.quote)}</blockquote>{e(f.promise.claim)}</td>"
                    f"<td><strong>{e(f.verdict)}</strong></td><td><ul>{checks or '<li>no check</li>'}</ul></td></tr>")
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>GTG CRM privacy policy: evidence</title>"
            f"<style>{_CSS}</style></head><body><h1>GTG CRM privacy policy: evidence</h1>"
            f"<p>Evaluated {e(_time(evaluated_at))} from the latest result of each asset check. "
            f"{counts[KEPT]} kept, {counts[BROKEN]} broken, {counts[NOT_EVIDENCED]} not yet evidenced, "
            f"of {len(findings)} promises.</p>"
            "<table><thead><tr><th>§</th><th>promise</th><th>verdict</th><th>checks (latest result)</th></tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></body></html>\n")
