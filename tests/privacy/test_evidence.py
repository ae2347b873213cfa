"""The privacy policy's evidence file and its verdicts: the real file against the real checks, and each verdict
from hand-made results."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pipelines.privacy.evidence import (
    BROKEN,
    KEPT,
    NOT_EVIDENCED,
    CheckResult,
    EvidenceError,
    Promise,
    html_page,
    judge,
    load_promises,
    markdown,
    resolve,
    rows,
)

POLICY = Path("/work/shared/privacy-policy.txt")
# The promises the issue lists, in the file's order; the two still waiting for the other sources' checks.
PROMISE_IDS = ["payment_never_readable", "contact_lists", "mail_integrations", "ad_integrations", "deletion_any_time",
               "no_use_without_permission", "all_data_encrypted", "workspace_only", "usage_recorded", "device_logged",
               "cookies_per_consent", "access_review", "correction", "opt_out", "retention"]
PENDING: set[str] = set()  # every promise has checks
AT = dt.datetime(2026, 12, 2, 9, 30, tzinfo=dt.timezone.utc)


def _existing_checks() -> list[str]:
    from assets.policy_evidence import _existing

    return list(_existing())


def test_the_file_lists_every_promise_and_quotes_the_policy_word_for_word() -> None:
    promises = load_promises()
    assert [p.id for p in promises] == PROMISE_IDS
    assert {p.id for p in promises if not p.checks} == PENDING
    assert all(p.pending for p in promises if not p.checks)
    if POLICY.exists():  # the policy text lives beside the project on this kind of machine
        text = POLICY.read_text(encoding="utf-8")
        assert [p.id for p in promises if p.quote not in text] == []


def test_every_named_check_exists_and_resolves_to_the_checks_it_means() -> None:
    existing = _existing_checks()
    resolved = resolve(load_promises(), existing)
    assert {pid: missing for pid, (_, missing) in resolved.items() if missing} == {}
    assert {pid for pid, (found, _) in resolved.items() if not found} == PENDING
    within = sorted(n for n in existing if ":within_retention__" in n)
    assert resolved["retention"][0] == within and len(within) == 40  # 39 table rules and the landed files' rule
    assert resolved["workspace_only"][0] == ["privacy/data_subject_requests:exports_hold_only_their_workspace"]
    assert resolved["cookies_per_consent"][0] == ["raw_events/usage_events:events_opted_out_without_identifiers"]
    assert len(resolved["all_data_encrypted"][0]) == 23  # one per table holding personal columns


def _promise(pid: str, *checks: str) -> Promise:
    return Promise(id=pid, sections=("5",), quote=f"quote <{pid}>", claim=f"claim & {pid}", checks=checks)


def test_verdicts_follow_the_latest_results() -> None:
    existing = ["a/t:ok_1", "a/t:ok_2", "a/t:bad", "b/t:never"]
    latest = {"a/t:ok_1": CheckResult("a/t:ok_1", True, AT), "a/t:ok_2": CheckResult("a/t:ok_2", True, AT),
              "a/t:bad": CheckResult("a/t:bad", False, AT + dt.timedelta(hours=1))}
    findings = judge([_promise("kept", "a/t:ok_*"), _promise("broken", "a/t:*"), _promise("never", "b/t:never"),
                      _promise("none"), _promise("missing", "a/t:ok_1", "c/t:gone")], existing, latest)
    assert [(f.promise.id, f.verdict) for f in findings] == [
        ("kept", KEPT), ("broken", BROKEN), ("never", NOT_EVIDENCED), ("none", NOT_EVIDENCED), ("missing", BROKEN)]
    assert [r.name for r in findings[0].results] == ["a/t:ok_1", "a/t:ok_2"]
    assert findings[1].latest_at == AT + dt.timedelta(hours=1) and findings[3].latest_at is None
    assert findings[4].unmatched == ["c/t:gone"]
    table = rows(findings, AT)
    assert [(r["promise_id"], r["checks"], r["checks_passed"], r["checks_failed"], r["checks_never_ran"],
             r["missing_checks"]) for r in table] == [
        ("kept", 2, 2, 0, 0, ""), ("broken", 3, 2, 1, 0, ""), ("never", 1, 0, 0, 1, ""), ("none", 0, 0, 0, 0, ""),
        ("missing", 1, 1, 0, 0, "c/t:gone")]
    text = markdown(findings)
    assert text.splitlines()[2] == "| 5 | claim & kept | **kept** | 2/2 passed | 2026-12-02 09:30 UTC |"
    assert "| **broken** | 2/3 passed; 1 failed |" in text and "missing: c/t:gone" in text
    page = html_page(findings, AT)
    assert "claim &amp; kept" in page and "quote &lt;kept&gt;" in page and "<script" not in page
    assert "1 kept, 2 broken, 2 not yet evidenced, of 5 promises." in page
    assert '<tr class="not-yet-evidenced" id="none">' in page


@pytest.mark.parametrize("body, error", [
    ('[[promise]]\nid = "x"\nsections = ["1"]\nquote = "q"\nclaim = "c"\nchecks = ["no-colon"]\n', "is named"),
    ('[[promise]]\nid = "x"\nsections = ["1"]\nquote = "q"\nchecks = []\n', "missing \\['claim'\\]"),
    ('[[promise]]\nid = "x"\nsections = ["1"]\nquote = "q"\nclaim = "c"\nchecks = ["a:b"]\npending = "p"\n',
     "`pending` is for promises without checks"),
    ('[[promise]]\nid = "x"\nsections = ["1"]\nquote = "q"\nclaim = "c"\nchecks = []\nverdict = "kept"\n',
     "unknown field"),
    ('[[promise]]\nid = "x"\nsections = ["1"]\nquote = "q"\nclaim = "c"\nchecks = []\n' * 2, "id used twice"),
    ("", "no \\[\\[promise\\]\\]"),
    ("[[promise]\n", "evidence.toml"),
])
def test_a_broken_file_is_refused_with_its_reason(tmp_path: Path, body: str, error: str) -> None:
    path = tmp_path / "evidence.toml"
    path.write_text(body)
    with pytest.raises(EvidenceError, match=error):
        load_promises(path)
