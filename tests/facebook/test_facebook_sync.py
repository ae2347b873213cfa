"""The Meta source end to end: the real facebook-business SDK against the Graph API sandbox, loading with dlt
into a real DuckDB warehouse. Exact mirrors after full and incremental syncs, day boundaries west of UTC, a
currency without minor unit, deleted objects, leads encrypted per person, and every fault switch."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import subprocess
import sys
from decimal import Decimal

import pytest

from pipelines.connections.errors import ReauthorizationRequired
from pipelines.facebook import allocator
from pipelines.facebook.insights import RESUME_KEY, months_before, slices
from pipelines.facebook.settings import SANDBOX_OPTIONS
from tests.facebook.conftest import (  # noqa: F401 - ads: the fixture
    BERLIN, DAYS, RAW, TOKYO, WEST, AdsPlatform, ads, assert_mirror, expected_actions, expected_insights,
)


STRUCTURE = ("campaigns", "ad_sets", "ads", "ad_creatives")
STRUCTURE_EDGES = ("campaigns", "adsets", "ads", "adcreatives")


def test_full_sync_mirrors_every_account(ads: AdsPlatform) -> None:
    reports = {c: ads.sync(c) for c in (WEST, TOKYO, BERLIN)}
    for connection_id, report in reports.items():
        assert_mirror(ads, connection_id)
        account = ads.account(connection_id)
        assert report.streams["ad_insights"].inserted == len(account.insights) == 12 * DAYS
        assert report.streams["ad_insights"].updated == 0 and report.streams["leads"].inserted == 8
        state = ads.registry.get(connection_id).sync_state
        assert state["insights_until"] == account.today().isoformat()
    west = ads.query(f"SELECT currency, timezone_name FROM {RAW}.ad_accounts WHERE connection_id = ?", [WEST])
    assert west == [("USD", "America/Los_Angeles")]
    # 13 async runs of 90 days cover the 37 months: a run, two polls and one page each (12 ads x 40 days < 500).
    assert ads.server.http_requests["insights.async"] == 3 * 13
    assert ads.server.http_requests["insights"] == 0


def test_first_sync_reaches_back_37_months_and_later_ones_reread_28_days(ads: AdsPlatform) -> None:
    ads.sync(WEST)
    today = ads.account(WEST).today()
    first = [r for r in ads.server.insight_ranges if r[0] == "act_1001"]
    assert first[0][1] == months_before(today, 37).isoformat() and first[-1][2] == today.isoformat()
    before = dict(ads.query(f"SELECT insight_id, synced_at FROM {RAW}.ad_insights WHERE connection_id = ?", [WEST]))
    ads.server.insight_ranges.clear()
    changed = ads.account(WEST).late_conversions(seed=1)
    report = ads.sync(WEST)
    window_start = today - dt.timedelta(days=27)
    assert ads.server.insight_ranges == [("act_1001", window_start.isoformat(), today.isoformat())]
    assert report.streams["ad_insights"].updated == 12 * 28 and report.streams["ad_insights"].inserted == 0
    assert changed > 0
    assert_mirror(ads, WEST)  # the late conversions arrived; no duplicates
    after = dict(ads.query(f"SELECT insight_id, synced_at FROM {RAW}.ad_insights WHERE connection_id = ?", [WEST]))
    untouched = {k for k in before if dt.date.fromisoformat(k.split(":")[1]) < window_start}
    assert len(untouched) == 12 * (DAYS - 28)
    assert all(after[k] == before[k] for k in untouched) and all(after[k] > before[k] for k in before if k not in untouched)
    purchases = ads.query(
        f"SELECT sum(value) FROM {RAW}.ad_insight_actions WHERE connection_id = ? AND kind = 'action' "
        "AND action_type = 'offsite_conversion.fb_pixel_purchase' AND attribution_window = '7d_click'", [WEST])[0][0]
    expected = sum(f.actions["offsite_conversion.fb_pixel_purchase"]["7d_click"] for f in ads.account(WEST).insights.values())
    assert purchases == expected


def test_a_big_sync_loads_in_pieces_and_a_crash_between_them_leaves_a_mirror_the_next_sync_completes(
        ads: AdsPlatform) -> None:
    # Pieces of 100 rows: 12 ads make 8-day slices (at most 96 rows each), a piece ends after two of them.
    small = dataclasses.replace(SANDBOX_OPTIONS, piece_rows=100)
    ads.server.faults.inject("expired_token", endpoint="account", skip=1)  # the second load's first request
    with pytest.raises(Exception) as failed:
        ads.sync(WEST, small)
    assert isinstance(_cause(failed.value, ReauthorizationRequired), ReauthorizationRequired)
    state = ads.registry.get(WEST).sync_state
    resume = dt.date.fromisoformat(state[RESUME_KEY])
    assert "insights_until" not in state
    first_piece = {k: v for k, v in expected_insights(ads, WEST).items() if k[1] < resume}
    assert ads.insights(WEST) == first_piece and len(first_piece) in (12 * 16, 12 * 8 + 12 * 16)
    assert ads.query(f"SELECT count(*) FROM {RAW}.ad_insight_actions WHERE connection_id = ? AND date_day >= ?",
                     [WEST, resume]) == [(0,)]
    with ads.keyring() as cipher:
        ads.registry.reauthorise(cipher, WEST, None, ads.account(WEST).token)
    ads.server.insight_ranges.clear()
    report = ads.sync(WEST, small)
    assert ads.server.insight_ranges[0][1] == resume.isoformat()  # it goes on where the first piece ended
    assert report.streams["ad_insights"].inserted == 12 * DAYS - len(first_piece)
    assert_mirror(ads, WEST)
    state = ads.registry.get(WEST).sync_state
    assert RESUME_KEY not in state and state["insights_until"] == ads.account(WEST).today().isoformat()
    loads = ads.query(f"SELECT count(DISTINCT synced_at) FROM {RAW}.ad_insights WHERE connection_id = ?", [WEST])
    assert loads[0][0] >= 3  # one write time per piece of at most ~200 rows, over 480


def test_days_are_the_accounts_own_west_and_east_of_utc(ads: AdsPlatform) -> None:
    for connection_id in (WEST, TOKYO):
        ads.sync(connection_id)
    last = dict(ads.query(f"SELECT connection_id, max(date_day) FROM {RAW}.ad_insights GROUP BY 1"))
    assert last == {WEST: dt.date(2026, 11, 29), TOKYO: dt.date(2026, 11, 30)}  # at 03:00 UTC on the 30th
    ads.world.now += dt.timedelta(hours=6)  # 09:00 UTC: 01:00 on the 30th in Los Angeles
    ads.server.insight_ranges.clear()
    ads.sync(WEST)
    assert ads.server.insight_ranges == [("act_1001", "2026-11-03", "2026-11-30")]


def test_yen_amounts_stay_whole(ads: AdsPlatform) -> None:
    ads.sync(TOKYO)
    spend = [r[0] for r in ads.query(f"SELECT spend FROM {RAW}.ad_insights WHERE connection_id = ?", [TOKYO])]
    assert spend and all(s == s.to_integral_value() for s in spend)
    budgets = dict(ads.query(f"SELECT campaign_id, daily_budget FROM {RAW}.campaigns WHERE connection_id = ?", [TOKYO]))
    account = ads.account(TOKYO)
    assert budgets == {o.id: Decimal(o.fields["daily_budget"]) for o in account.of_kind("campaign")}
    ads.sync(WEST)
    west = dict(ads.query(f"SELECT campaign_id, daily_budget FROM {RAW}.campaigns WHERE connection_id = ?", [WEST]))
    assert west == {o.id: Decimal(o.fields["daily_budget"]) / 100 for o in ads.account(WEST).of_kind("campaign")}


def test_a_deleted_campaign_keeps_its_rows_with_its_status(ads: AdsPlatform) -> None:
    ads.sync(BERLIN)
    account = ads.account(BERLIN)
    campaign = sorted(o.id for o in account.of_kind("campaign"))[0]
    account.delete_campaign(campaign)
    ads.world.now += dt.timedelta(hours=1)
    report = ads.sync(BERLIN)
    assert_mirror(ads, BERLIN)
    statuses = ads.query(f"SELECT effective_status, count(*) FROM {RAW}.ads WHERE connection_id = ? AND campaign_id = ? "
                         "GROUP BY 1", [BERLIN, campaign])
    assert statuses == [("DELETED", 4)]
    # read by updated_time: the campaign, its two ad sets and four ads (and their creatives), nothing else
    assert [(report.streams[t].updated, report.streams[t].inserted, report.streams[t].deleted) for t in STRUCTURE] == [
        (1, 0, 0), (2, 0, 0), (4, 0, 0), (4, 0, 0)]
    spend = ads.query(f"SELECT count(*) FROM {RAW}.ad_insights WHERE connection_id = ? AND campaign_id = ?",
                      [BERLIN, campaign])
    assert spend == [(4 * DAYS,)]


def test_structure_is_read_by_updated_time_between_daily_full_listings(ads: AdsPlatform) -> None:
    account = ads.account(BERLIN)
    first = ads.sync(BERLIN)
    # one listing each, and a first sync asks Meta how many ads there are (`summary`: the insights' slice length)
    assert [ads.server.http_requests[e] for e in STRUCTURE_EDGES] == [1, 1, 2, 1]
    assert [(first.streams[t].inserted, first.streams[t].full_resync) for t in STRUCTURE] == [
        (3, True), (6, True), (12, True), (12, True)]
    ads.world.now += dt.timedelta(hours=1)
    renamed = sorted(o.id for o in account.of_kind("ad"))[0]
    account.rename_ad(renamed, "Winter offer")
    added = account.add_ad(sorted(o.id for o in account.of_kind("adset"))[0], "Brand new ad")
    ads.world.now += dt.timedelta(hours=1)
    ads.server.reset_counts()
    second = ads.sync(BERLIN)
    # nothing re-listed: campaigns and ad sets answer empty, the ads listing brings the two ads, and the creatives
    # come from one more ads listing with the creative expanded; the creatives edge is not read
    assert [ads.server.http_requests[e] for e in STRUCTURE_EDGES] == [1, 1, 2, 0]
    assert [(second.streams[t].inserted, second.streams[t].updated, second.streams[t].full_resync)
            for t in STRUCTURE] == [(0, 0, False), (0, 0, False), (1, 1, False), (1, 1, False)]
    assert_mirror(ads, BERLIN)
    assert ads.query(f"SELECT creative_id FROM {RAW}.ads WHERE ad_id = ?", [added.id]) == [(f"7{added.id}",)]
    active = next(o.id for o in account.of_kind("campaign") if o.status == "ACTIVE")
    account.pause_campaign(active)  # its ad sets and ads turn CAMPAIGN_PAUSED; their updated_time stays
    ads.world.now += dt.timedelta(hours=1)
    third = ads.sync(BERLIN)
    assert (third.streams["campaigns"].updated, third.streams["ads"].updated) == (1, 0)
    stale = ads.query(f"SELECT count(*) FROM {RAW}.ads WHERE campaign_id = ? AND effective_status = 'ACTIVE'", [active])
    assert stale == [(2,)]  # the two active ads of the campaign, until the next full listing
    ads.world.now += dt.timedelta(days=1)
    ads.server.reset_counts()
    fourth = ads.sync(BERLIN)
    assert [ads.server.http_requests[e] for e in STRUCTURE_EDGES] == [1, 1, 1, 1]
    assert [(fourth.streams[t].updated, fourth.streams[t].full_resync) for t in STRUCTURE] == [
        (3, True), (6, True), (13, True), (13, True)]
    assert_mirror(ads, BERLIN)
    assert ads.query(f"SELECT count(*) FROM {RAW}.ads WHERE campaign_id = ? AND effective_status = 'CAMPAIGN_PAUSED'",
                     [active]) == [(2,)]


def test_new_leads_arrive_incrementally_encrypted_per_person(ads: AdsPlatform) -> None:
    ads.sync(WEST)
    account = ads.account(WEST)
    ads.world.now += dt.timedelta(hours=1)
    new = account.add_leads(3, seed=9)
    ads.server.reset_counts()
    report = ads.sync(WEST)
    assert report.streams["leads"].inserted == 3 and report.streams["leads"].updated == 0
    leads = ads.decrypted_leads(WEST)
    for lead in new:
        assert leads[lead.id]["full_name"] == lead.answers["full_name"]
        assert leads[lead.id]["phone_number"] == lead.answers["phone_number"]
        custom = {k: v for k, v in lead.answers.items() if k not in ("email", "full_name", "phone_number")}
        assert json.loads(leads[lead.id]["answers"]) if custom else leads[lead.id]["answers"] is None
    refs = ads.query(f"SELECT count(DISTINCT subject_ref), count(*) FROM {RAW}.leads WHERE connection_id = ?", [WEST])
    assert refs == [(11, 11)]  # one subject key per person
    account.erase_lead_data()  # Meta forgets leads after 90 days: what was synced stays
    ads.sync(WEST)
    assert len(ads.decrypted_leads(WEST)) == 11


@pytest.mark.parametrize("fault", [
    {"kind": "rate_limit", "code": 17, "endpoint": "campaigns"},
    {"kind": "rate_limit", "code": 613, "endpoint": "report_run"},
    {"kind": "rate_limit", "code": 80004, "endpoint": "insights.async", "times": 2},
    {"kind": "provider_error", "code": 1, "status": 500, "endpoint": "report_run.insights"},
    {"kind": "provider_error", "code": 2, "status": 503, "endpoint": "leads"},
    {"kind": "server_error", "status": 500, "endpoint": "ads"},
    {"kind": "slow", "delay": 0.3, "endpoint": "account"},
    {"kind": "drop", "endpoint": "report_run.insights"},
    {"kind": "truncate", "endpoint": "adsets"},
], ids=lambda f: f"{f['kind']}-{f.get('code', f.get('status', ''))}-{f['endpoint']}")
def test_each_fault_is_survived(ads: AdsPlatform, fault: dict) -> None:
    kind = fault.pop("kind")
    ads.server.faults.inject(kind, **fault)
    report = ads.sync(WEST)
    assert ads.server.faults.fired[kind] == fault.get("times", 1) and not ads.server.faults.armed
    assert report.retries == (0 if kind == "slow" else fault.get("times", 1))
    assert_mirror(ads, WEST)


def test_reduce_the_amount_of_data_halves_the_page_then_the_range(ads: AdsPlatform) -> None:
    ads.server.faults.inject("provider_error", code=1, subcode=99, status=500, endpoint="report_run.insights")
    ads.server.faults.inject("provider_error", code=1, subcode=99, status=500, endpoint="insights.async",
                             skip=12)  # the last 90-day run (the one with rows) is refused for its size
    report = ads.sync(WEST)
    assert ads.server.faults.fired["provider_error"] == 2 and report.retries == 1
    assert ads.server.http_requests["insights.async"] == 13 + 2  # the refused run, then its two halves
    assert_mirror(ads, WEST)


def test_a_failed_report_run_is_read_in_smaller_synchronous_slices(ads: AdsPlatform) -> None:
    ads.server.faults.inject("job_failed", skip=12)  # the run of the last 90 days
    report = ads.sync(WEST)
    assert ads.server.faults.fired["job_failed"] == 1 and report.retries == 1
    today = ads.account(WEST).today()
    since, until = slices(months_before(today, 37), today, 90)[-1]
    assert ads.server.http_requests["insights"] == len(slices(since, until, 7)) == 7  # one page per 7-day slice
    assert_mirror(ads, WEST)


def test_usage_headers_slow_the_sync_before_meta_refuses_it(ads: AdsPlatform) -> None:
    ads.server.usage_per_call, ads.server.usage_window_s = 30, 1.0
    report = ads.sync(BERLIN)
    assert report.waits >= 1 and ads.server.throttled == 0 and report.retries == 0
    assert_mirror(ads, BERLIN)


def test_an_expired_token_asks_for_reauthorisation_without_crash_looping(ads: AdsPlatform) -> None:
    ads.sync(TOKYO)
    state = ads.registry.get(TOKYO).sync_state
    ads.server.faults.inject("expired_token", endpoint="report_run")
    with pytest.raises(Exception) as failed:
        ads.sync(TOKYO)
    assert isinstance(_cause(failed.value, ReauthorizationRequired), ReauthorizationRequired)
    connection = ads.registry.get(TOKYO)
    assert connection.status == "needs_reauth" and "190" in connection.status_detail
    assert ads.account(TOKYO).token not in connection.status_detail and connection.sync_state == state
    assert TOKYO not in {c.connection_id for c in ads.registry.list("facebook_ads")}  # no schedule retries it
    with ads.keyring() as cipher:
        ads.registry.reauthorise(cipher, TOKYO, None, ads.account(TOKYO).token)
    ads.sync(TOKYO)
    assert ads.registry.get(TOKYO).status == "active"
    assert_mirror(ads, TOKYO)


def _cause(exc: BaseException, kind: type) -> BaseException | None:
    while exc is not None and not isinstance(exc, kind):
        exc = exc.__cause__ or exc.__context__
    return exc



# Run in a fresh interpreter each time that imports nothing else (the allocator module by its file): its heap has
# no free chunk of 256 KiB that could serve the blocks either way, and its top is trimmed before they are asked for.
_BLOCKS = """
import ctypes
import importlib.util
import sys

spec = importlib.util.spec_from_file_location("allocator", sys.argv[2])
allocator = importlib.util.module_from_spec(spec)
spec.loader.exec_module(allocator)

class MallInfo(ctypes.Structure):  # glibc's struct mallinfo2; hblks: blocks that are mappings of their own
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes, libc.mallinfo2.restype = [ctypes.c_void_p], MallInfo

held = sys.argv[1] == "held" and allocator.fix_mmap_threshold()
libc.free(libc.malloc(4 << 20))  # a 4 MiB mapping freed: glibc raises its threshold to 4 MiB, unless it is held
libc.malloc_trim(0)
before = libc.mallinfo2().hblks
blocks = [libc.malloc(256 << 10) for _ in range(4)]
print(held, libc.mallinfo2().hblks - before)
"""


def test_duckdb_sized_blocks_are_mappings_again_once_the_threshold_is_held() -> None:
    """What `SyncPieces` sets before its loads: after a freed mapping, glibc serves DuckDB's 256 KiB blocks from
    the heap (freed, they stay with the process); with the threshold held they are mappings of their own."""
    def blocks(threshold: str) -> list[str]:
        return subprocess.run([sys.executable, "-c", _BLOCKS, threshold, allocator.__file__], capture_output=True,
                              text=True, check=True).stdout.split()

    assert blocks("dynamic") == ["False", "0"]
    assert blocks("held") == ["True", "4"]
