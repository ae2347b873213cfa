"""Seeded generator of GTG CRM usage events as NDJSON landing files (contract usage_event 1-0-0).

Why it exists: the events pipeline (landing -> validation -> dedup -> privacy -> analytics) must be developed and
load-tested without production data. This module writes files that look like what the trackers deliver:

* the layout the landing sensor reads, `<out>/dt=YYYY-MM-DD/events-00000.ndjson[.gz]`, where `dt` is the day the
  line *arrived* (not the day it occurred);
* realistic traffic: many workspaces and returning users, sessions of page views and clicks, browsers, apps and
  bots with real user-agent strings, IPv4/IPv6, consent choices, varied RFC 3339 offsets, late arrivals;
* the defects the pipeline must survive, in exactly known numbers: byte-identical duplicate lines and invalid
  lines of five kinds (`GenerationStats` tells how many of each landed where, so tests can assert exact counts).

Design choices, all in service of "tens of millions of lines, reproducibly":

* One `random.Random(seed)` drives everything in a fixed order, and profiles are derived from `(seed, index)`,
  so the same arguments give byte-identical files (gzip headers carry no name and mtime 0).
* Lines are streamed to the files day by day; the only state kept is a bounded profile cache and a bounded pool
  of recent lines to duplicate, so memory stays flat however many events are asked for.
* Profiles pre-render their identity members as JSON text once; each event is one f-string. This is several
  times faster than building a dict and calling `json.dumps` per line.
* Valid events are correct by construction (the timestamp rules below hold for every valid line); a bad line has
  exactly one defect and a fresh event id, so a reader can recount valid, duplicate and bad lines unambiguously.

Validity, as the pipeline (and the tests) define it: a line is valid iff it is a JSON object accepted by the
contract's JSON Schema with format checking, its occurred_at is not before 2000-01-01 and not after the end of its
landing day plus one day. Valid events here never occur after the end of their landing day (UTC).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import gzip as gzip_lib
import hashlib
import ipaddress
import json
import math
import random
import sys
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import IO, Generic, TypeVar

import fsspec.core

from pipelines import paths
from pipelines.workspaces import WorkspaceRegistry

__all__ = ["BAD_KINDS", "GenerationStats", "generate_events", "main"]

BAD_KINDS: tuple[str, ...] = ("broken_json", "missing_field", "wrong_type", "bad_format", "impossible_timestamp")

_DAY_MS = 86_400_000
_EPOCH = dt.date(1970, 1, 1)
# Share of human sessions whose events reach the landing zone one to three days late (offline apps, retries).
# Slightly above 3 % because bot sessions are never late, so about 3 % of all valid events are late.
_LATE_SESSION_SHARE = 0.031
# Share of sessions that are crawlers; bot sessions are about as long as human ones, so ~3 % of events.
_BOT_SESSION_SHARE = 0.03
# Gzip level 6 is the zlib default: a good size/speed balance for files that are written once and read often.
_GZIP_LEVEL = 6
_WRITE_BATCH = 2048
_PROFILE_CACHE = 50_000
_RECENT_LINES = 400
_OLD_LINES = 600
_OLD_EVERY = 50

_T = TypeVar("_T")


class _Table(Generic[_T]):
    """A weighted choice prepared once, because `random.choices` rebuilds cumulative weights on every call."""

    __slots__ = ("values", "cum", "total")

    def __init__(self, pairs: Iterable[tuple[_T, float]]) -> None:
        self.values: list[_T] = []
        self.cum: list[float] = []
        total = 0.0
        for value, weight in pairs:
            if weight > 0:
                total += weight
                self.values.append(value)
                self.cum.append(total)
        self.total = total

    def pick(self, rng: random.Random) -> _T:
        index = bisect_right(self.cum, rng.random() * self.total)
        return self.values[min(index, len(self.values) - 1)]


# How many days late a late visit lands: mostly the next day (an app synced the next morning).
_LATE_LAG_DAYS: _Table[int] = _Table(((1, 0.6), (2, 0.3), (3, 0.1)))


# --------------------------------------------------------------------------------------------------------------
# User agents: a fixed catalogue (independent of the seed) of a few hundred real-looking strings.
# --------------------------------------------------------------------------------------------------------------


def _recency(versions: Sequence[_T]) -> list[tuple[_T, float]]:
    """Newer versions are more common: weight grows linearly with the position in the (ascending) list."""
    return [(v, float(i + 1)) for i, v in enumerate(versions)]


def _normalised(pairs: list[tuple[_T, float]], share: float) -> list[tuple[_T, float]]:
    """Scale a group's weights to `share` so groups can be mixed by market share regardless of their size."""
    total = sum(w for _, w in pairs)
    return [(v, share * w / total) for v, w in pairs]


def _chrome_builds(major: int) -> list[str]:
    """Chrome sends `NNN.0.0.0` since UA reduction; older builds and some embedders still send full versions."""
    build = 6000 + (major - 118) * 57
    return [f"{major}.0.0.0", f"{major}.0.{build}.{major * 13 % 150 + 1}", f"{major}.0.{build + 3}.{major * 29 % 180 + 2}"]


_CHROME = range(118, 132)
_FIREFOX = (115, 121, 122, 123, 124, 125, 126, 127, 128, 129, 130, 131, 132, 133)
_SAFARI_MAC = ("16.6", "17.0", "17.1", "17.2.1", "17.3.1", "17.4.1", "17.5", "17.6", "18.0", "18.0.1", "18.1", "18.1.1")
_IOS = ("16_7_10", "17_0_3", "17_1_2", "17_2_1", "17_3_1", "17_4_1", "17_5_1", "17_6_1", "18_0", "18_0_1", "18_1", "18_1_1")
_SAMSUNG = (("23.0", 115), ("24.0", 117), ("25.0", 121), ("26.0", 122), ("27.0", 125))
_SAMSUNG_PHONES = ("SM-S911B", "SM-S918B", "SM-A546B", "SM-G991B", "SM-S928B", "SM-A156B")
_ANDROID_TABLETS = ("SM-X710", "SM-X910", "SM-X200", "Lenovo TB-X606F")
_APP_VERSIONS = ("5.0.2", "5.1.0", "5.1.3", "5.2.0", "5.3.1")
_DALVIK_PHONES = (("SM-S911B", "UP1A.231005.007"), ("Pixel 8", "AP2A.240805.005"), ("Pixel 7a", "AP1A.240505.004"),
                  ("SM-A546B", "UP1A.231005.007"), ("SM-G991B", "TP1A.220624.014"))
_DALVIK_TABLETS = (("SM-X710", "UP1A.231005.007"), ("SM-X200", "TP1A.220624.014"))

_WIN = "Windows NT 10.0; Win64; x64"
_MAC = "Macintosh; Intel Mac OS X 10_15_7"
_WEBKIT = "AppleWebKit/537.36 (KHTML, like Gecko)"
_SAFARI_WEBKIT = "AppleWebKit/605.1.15 (KHTML, like Gecko)"


def _desktop_agents() -> list[tuple[str, float]]:
    """Desktop mix: Windows 68 % (Chrome, Edge, Firefox), macOS 27 % (Chrome, Safari, ...), Linux 5 %."""
    chrome = [(b, w) for major, w in _recency(list(_CHROME)) for b in _chrome_builds(major)]
    edge = [(f"{m}.0.{2000 + (m - 118) * 45}.{m * 7 % 90 + 10}", w) for m, w in _recency(list(_CHROME[2:]))]
    edge += [(f"{m}.0.{2000 + (m - 118) * 45 + 12}.{m * 11 % 70 + 5}", w / 2) for m, w in _recency(list(_CHROME[2:]))]
    firefox = _recency(list(_FIREFOX))

    def chrome_on(os_part: str) -> list[tuple[str, float]]:
        return [(f"Mozilla/5.0 ({os_part}) {_WEBKIT} Chrome/{b} Safari/537.36", w) for b, w in chrome]

    def edge_on(os_part: str) -> list[tuple[str, float]]:
        return [(f"Mozilla/5.0 ({os_part}) {_WEBKIT} Chrome/{b.split('.')[0]}.0.0.0 Safari/537.36 Edg/{b}", w)
                for b, w in edge]

    def firefox_on(os_part: str) -> list[tuple[str, float]]:
        return [(f"Mozilla/5.0 ({os_part}; rv:{v}.0) Gecko/20100101 Firefox/{v}.0", w) for v, w in firefox]

    safari = [(f"Mozilla/5.0 ({_MAC}) {_SAFARI_WEBKIT} Version/{v} Safari/605.1.15", w) for v, w in _recency(_SAFARI_MAC)]
    linux_firefox = firefox_on("X11; Linux x86_64") + firefox_on("X11; Ubuntu; Linux x86_64")
    return (
        _normalised(chrome_on(_WIN), 68 * 0.70) + _normalised(edge_on(_WIN), 68 * 0.20)
        + _normalised(firefox_on(_WIN), 68 * 0.10)
        + _normalised(chrome_on(_MAC), 27 * 0.50) + _normalised(safari, 27 * 0.40)
        + _normalised(firefox_on("Macintosh; Intel Mac OS X 10.15"), 27 * 0.06) + _normalised(edge_on(_MAC), 27 * 0.04)
        + _normalised(chrome_on("X11; Linux x86_64"), 5 * 0.55) + _normalised(linux_firefox, 5 * 0.45)
    )


def _ios_web(device: str, os_label: str) -> list[tuple[str, float]]:
    """Safari (most) and Chrome (CriOS) on iPhone or iPad."""
    safari = [(f"Mozilla/5.0 ({device}; CPU {os_label} {v} like Mac OS X) {_SAFARI_WEBKIT} Version/{v.replace('_', '.')} "
               f"Mobile/15E148 Safari/604.1", w) for v, w in _recency(_IOS)]
    chrome = [(f"Mozilla/5.0 ({device}; CPU {os_label} {v} like Mac OS X) {_SAFARI_WEBKIT} CriOS/{m}.0.{6000 + m}.{m % 9 + 80} "
               f"Mobile/15E148 Safari/604.1", wv * wm) for v, wv in _recency(_IOS[6:]) for m, wm in _recency(_CHROME[-6:])]
    return _normalised(safari, 0.82) + _normalised(chrome, 0.18)


def _android_web(models: Sequence[str], mobile: bool) -> list[tuple[str, float]]:
    """Chrome (reduced UA `Android 10; K` and legacy model strings), Samsung Internet and Firefox on Android."""
    suffix = "Mobile Safari/537.36" if mobile else "Safari/537.36"
    reduced = [(f"Mozilla/5.0 (Linux; Android 10; K) {_WEBKIT} Chrome/{m}.0.0.0 {suffix}", w) for m, w in _recency(_CHROME)]
    legacy = [(f"Mozilla/5.0 (Linux; Android {a}; {model}) {_WEBKIT} Chrome/{m}.0.0.0 {suffix}", wm)
              for a in (13, 14) for model in models for m, wm in _recency(_CHROME[-5:])]
    samsung = [(f"Mozilla/5.0 (Linux; Android {a}; {model}) {_WEBKIT} SamsungBrowser/{sv} Chrome/{cv}.0.0.0 {suffix}", w)
               for a in (13, 14) for model in models for (sv, cv), w in _recency(_SAMSUNG)]
    kind = "Mobile" if mobile else "Tablet"
    firefox = [(f"Mozilla/5.0 (Android {a}; {kind}; rv:{v}.0) Gecko/{v}.0 Firefox/{v}.0", w)
               for a in (13, 14) for v, w in _recency(_FIREFOX[-6:])]
    return (_normalised(reduced, 0.55) + _normalised(legacy, 0.20) + _normalised(samsung, 0.20)
            + _normalised(firefox, 0.05))


def _app_agents(tablet: bool) -> list[tuple[tuple[str, str], float]]:
    """The GTG CRM mobile apps: the iOS app's own UA and Android's Dalvik UA. Value: (ua, platform)."""
    device, scale = ("iPad", "2.00") if tablet else ("iPhone", "3.00")
    ios = [((f"GTGCRM/{a} ({device}; iOS {v.replace('_', '.')}; Scale/{scale})", "ios"), wa * wv)
           for a, wa in _recency(_APP_VERSIONS) for v, wv in _recency(_IOS[4:])]
    android = [((f"Dalvik/2.1.0 (Linux; U; Android {a}; {model} Build/{build})", "android"), 1.0)
               for a in (13, 14) for model, build in (_DALVIK_TABLETS if tablet else _DALVIK_PHONES)]
    share_ios = 0.60 if tablet else 0.45
    return _normalised(ios, share_ios) + _normalised(android, 1 - share_ios)


def _web_table(pairs: list[tuple[str, float]]) -> _Table[tuple[str, str]]:
    return _Table(((ua, "web"), w) for ua, w in pairs)


_AGENTS: dict[tuple[str, bool], _Table[tuple[str, str]]] = {
    ("desktop", False): _web_table(_desktop_agents()),
    ("mobile", False): _web_table(_normalised(_ios_web("iPhone", "iPhone OS"), 0.45)
                                  + _normalised(_android_web(_SAMSUNG_PHONES, True), 0.55)),
    ("tablet", False): _web_table(_normalised(_ios_web("iPad", "OS"), 0.60)
                                  + _normalised(_android_web(_ANDROID_TABLETS, False), 0.40)),
    ("mobile", True): _Table(_app_agents(tablet=False)),
    ("tablet", True): _Table(_app_agents(tablet=True)),
}

_GOOGLEBOT = "compatible; Googlebot/2.1; +http://www.google.com/bot.html"
_BINGBOT = "compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm"
# (name, user agents, IPv4 /24 prefixes the crawler really uses, IPv6 /64-ish prefixes, weight)
_BOTS: tuple[tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...], float], ...] = (
    ("googlebot", (f"Mozilla/5.0 ({_GOOGLEBOT})",
                   *(f"Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; {_GOOGLEBOT}) Chrome/{m}.0.{6000 + m}.{m % 50} "
                     "Safari/537.36" for m in _CHROME[-4:]),
                   *(f"Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) {_WEBKIT} Chrome/{m}.0.{6000 + m}.{m % 50} "
                     f"Mobile Safari/537.36 ({_GOOGLEBOT})" for m in _CHROME[-4:])),
     ("66.249.64", "66.249.66", "66.249.68", "66.249.72", "66.249.79"), ("2001:4860:4801:10", "2001:4860:4801:2a"), 45),
    ("bingbot", (f"Mozilla/5.0 ({_BINGBOT})",
                 *(f"Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; {_BINGBOT}) Chrome/{m}.0.{6000 + m}.{m % 70} "
                   "Safari/537.36" for m in _CHROME[-3:])),
     ("157.55.39", "40.77.167", "207.46.13", "52.167.144"), (), 20),
    ("ahrefsbot", ("Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",),
     ("54.36.148", "54.36.149", "5.39.1", "51.222.253"), (), 12),
    ("semrushbot", ("Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",),
     ("85.208.96", "185.191.171"), (), 8),
    ("yandexbot", ("Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",), ("5.255.231", "213.180.203"), (), 5),
    ("applebot", ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 "
                  "Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)",), ("17.241.219", "17.241.227"), (), 4),
    ("duckduckbot", ("DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)",), ("20.191.45", "40.88.21"), (), 3),
    ("facebookexternalhit", ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",),
     ("69.171.249", "173.252.83"), ("2a03:2880:f800:1d", "2a03:2880:f801:2c"), 3),
)
_BOT_TABLE: _Table[tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...], float]] = _Table((b, b[4]) for b in _BOTS)

# --------------------------------------------------------------------------------------------------------------
# Profiles: who sends events, with their identity members pre-rendered as JSON text.
# --------------------------------------------------------------------------------------------------------------

_DEVICES = _Table((("desktop", 60.0), ("mobile", 30.0), ("tablet", 7.0)))
_OFFSETS = _Table(((("Z", 0), 30.0), (("+00:00", 0), 4.0), (("+01:00", 60), 20.0), (("+02:00", 120), 8.0),
                   (("-05:00", -300), 12.0), (("-04:00", -240), 5.0), (("-08:00", -480), 6.0), (("-03:00", -180), 3.0),
                   (("+05:30", 330), 4.0), (("+08:00", 480), 3.0), (("+09:00", 540), 3.0), (("+10:00", 600), 2.0)))
_FRACTION_DIGITS = _Table(((0, 30.0), (3, 55.0), (6, 15.0)))
_PLANS = _Table((("free", 35.0), ("starter", 30.0), ("pro", 25.0), ("enterprise", 10.0)))
_LOCALES = ("en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "nl-NL", "pt-BR", "it-IT", "pl-PL", "sv-SE")
_IPV4_FIRST = (24, 31, 37, 46, 62, 71, 73, 77, 79, 81, 82, 84, 86, 88, 91, 93, 95, 98, 99, 104, 107, 109, 151, 176,
               178, 185, 188, 195, 203, 212, 213, 217)
_IPV6_PREFIXES = ("2a02:8108", "2a01:cb1d", "2600:1700", "2601:647", "2003:e6", "2a00:23c5", "2406:3003", "2804:14c",
                  "2a0d:5600", "2a02:a03f")
# Local hour-of-day activity of a business tool: quiet nights, busy office hours.
_HOURS = _Table((h, w) for h, w in enumerate(
    (1, 0.6, 0.4, 0.3, 0.3, 0.5, 1.2, 2.5, 5, 7.5, 8.5, 8.5, 7, 7.5, 8, 8, 7.5, 6, 4, 3, 2.5, 2.2, 1.8, 1.3)))


@dataclasses.dataclass(frozen=True, slots=True)
class _Profile:
    """One browser, app install or crawler. `ids` holds the JSON members user_id..user_agent, each with a
    leading comma; members whose value is null are omitted when the tracker does not send nulls."""

    workspace_id: str
    plan: str
    ids: str
    consent: str
    offset_ms: int
    offset: str
    fraction_digits: int
    app: bool
    keep_nulls: bool
    locale: str


def _member(name: str, value: str | None, keep_nulls: bool) -> str:
    """A `,"name":value` JSON member; a None is `null` or left out, as the tracker that sends it does."""
    if value is None:
        return f',"{name}":null' if keep_nulls else ""
    return f',"{name}":{json.dumps(value)}'


def _uuid4(rng: random.Random) -> str:
    """A random UUID version 4 from the seeded generator (`uuid.uuid4` would read the OS entropy pool)."""
    h = f"{(rng.getrandbits(128) & ~(0xF << 76) & ~(0x3 << 62)) | (0x4 << 76) | (0x2 << 62):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _ipv4(rng: random.Random) -> str:
    return f"{rng.choice(_IPV4_FIRST)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _ipv6(rng: random.Random, prefix: str | None = None) -> str:
    """A global IPv6 address, half in full eight-group form and half `::`-compressed, as clients send both."""
    if prefix is None:
        prefix = rng.choice(_IPV6_PREFIXES)
    groups = prefix.count(":") + 1
    if rng.random() < 0.5:
        rest = ":".join(f"{rng.getrandbits(16):x}" for _ in range(8 - groups))
        return f"{prefix}:{rest}"
    head = ":".join(f"{rng.getrandbits(16):x}" for _ in range(max(0, 4 - groups)))
    tail = f"{rng.getrandbits(16):x}" if rng.random() < 0.5 else f"{rng.getrandbits(16):x}:{rng.getrandbits(16):x}"
    return f"{prefix}:{head}::{tail}" if head else f"{prefix}::{tail}"


def _consent(rng: random.Random) -> str:
    """About 10 % refuse analytics (and then also ads); about 40 % refuse ads in total."""
    analytics = rng.random() >= 0.10
    ads = analytics and rng.random() >= 1 / 3
    return f',"consent":{{"analytics":{"true" if analytics else "false"},"ads":{"true" if ads else "false"}}}'


class _Population:
    """Workspaces, their users and devices. A profile is derived from (seed, index) alone, so it is the same
    every time it is drawn (returning users across days) and only a bounded cache of them is kept."""

    def __init__(self, seed: int, events: int) -> None:
        self.seed = seed
        self.workspaces = max(5, events // 5000)
        self.size = max(200, events // 20)
        self._profiles: dict[int, _Profile] = {}
        self._workspace_cache: dict[int, tuple[str, str, int]] = {}

    def workspace(self, index: int) -> tuple[str, str, int]:
        """(workspace_id, plan, number of users) of workspace `index`."""
        found = self._workspace_cache.get(index)
        if found is None:
            rng = random.Random(f"{self.seed}/workspace/{index}")
            found = (f"ws_{index + 1:04d}", _PLANS.pick(rng), 3 + int(200 * rng.random() ** 3))
            self._workspace_cache[index] = found
        return found

    def any_workspace(self, rng: random.Random) -> tuple[str, str, int]:
        """Big workspaces (low index) produce more traffic than small ones."""
        return self.workspace(min(self.workspaces - 1, int(self.workspaces * rng.random() ** 1.7)))

    def returning(self, rng: random.Random) -> _Profile:
        """A skewed draw: a few heavy users come back every day, a long tail shows up once."""
        index = min(self.size - 1, int(self.size * rng.random() ** 1.5))
        profile = self._profiles.get(index)
        if profile is None:
            if len(self._profiles) >= _PROFILE_CACHE:
                self._profiles.clear()
            profile = self._profiles[index] = self._human(random.Random(f"{self.seed}/profile/{index}"))
        return profile

    def _user_id(self, workspace_id: str, user: int) -> str:
        digest = hashlib.blake2b(f"{self.seed}/{workspace_id}/{user}".encode(), digest_size=8).hexdigest()
        return f"usr_{digest}"

    def _human(self, rng: random.Random) -> _Profile:
        workspace_id, plan, users = self.any_workspace(rng)
        device = _DEVICES.pick(rng)
        app = device != "desktop" and rng.random() < (0.35 if device == "mobile" else 0.30)
        user_agent, platform = _AGENTS[(device, app)].pick(rng)
        identified = rng.random() < (0.95 if app else 0.65 if device == "desktop" else 0.45)
        user_id = self._user_id(workspace_id, int(users * rng.random() ** 1.3)) if identified else None
        device_id = None
        if platform == "ios":
            device_id = _uuid4(rng).upper()
        elif platform == "android":
            device_id = f"{rng.getrandbits(64):016x}"
        ip: str | None = None
        if app or rng.random() >= 0.015:
            ip = _ipv6(rng) if rng.random() < 0.20 else _ipv4(rng)
        keep_nulls = not app and rng.random() < 0.8
        ids = (_member("user_id", user_id, keep_nulls) + _member("anonymous_id", _uuid4(rng), keep_nulls)
               + _member("device_id", device_id, keep_nulls) + _member("ip", ip, keep_nulls)
               + _member("user_agent", user_agent, keep_nulls))
        offset, minutes = _OFFSETS.pick(rng)
        return _Profile(workspace_id, plan, ids, _consent(rng), minutes * 60_000, offset, _FRACTION_DIGITS.pick(rng),
                        app, keep_nulls, rng.choice(_LOCALES))

    def bot(self, rng: random.Random) -> _Profile:
        """A crawler visit: a fresh cookie every time (crawlers keep none), a crawler IP and user agent."""
        _, agents, v4, v6, _ = _BOT_TABLE.pick(rng)
        if v6 and rng.random() < 0.2:
            ip = _ipv6(rng, rng.choice(v6))
        else:
            ip = f"{rng.choice(v4)}.{rng.randrange(1, 255)}"
        workspace_id, plan, _ = self.any_workspace(rng)
        ids = (',"user_id":null' + _member("anonymous_id", _uuid4(rng), True) + ',"device_id":null'
               + _member("ip", ip, True) + _member("user_agent", rng.choice(agents), True))
        offset, minutes = ("Z", 0) if rng.random() < 0.6 else ("-08:00", -480)
        return _Profile(workspace_id, plan, ids, _consent(rng), minutes * 60_000, offset, 3, False, True, "en-US")


# --------------------------------------------------------------------------------------------------------------
# Sessions: what a visit looks like, as (offset in ms from the session start, event_type, trailing members).
# --------------------------------------------------------------------------------------------------------------

_PAGES = _Table((
    (("/dashboard", "Dashboard"), 14.0), (("/contacts", "Contacts"), 12.0), (("/contacts/{n}", "Contact"), 16.0),
    (("/contacts/{n}/edit", "Edit contact"), 3.0), (("/companies/{n}", "Company"), 6.0), (("/deals", "Deals"), 7.0),
    (("/deals/{n}", "Deal"), 9.0), (("/pipeline", "Pipeline"), 6.0), (("/reports", "Reports"), 4.0),
    (("/reports/{n}", "Report"), 4.0), (("/inbox", "Inbox"), 8.0), (("/calendar", "Calendar"), 4.0),
    (("/campaigns/{n}", "Campaign"), 3.0), (("/settings/team", "Team settings"), 1.0),
    (("/settings/billing", "Billing"), 1.0), (("/search", "Search"), 3.0),
))
_SCREENS = ("Dashboard", "ContactList", "ContactDetail", "DealList", "DealDetail", "Pipeline", "Inbox", "Calendar")
# Search terms are query strings that carry personal data: the pipeline must strip them from stored urls.
_SEARCH_TERMS = ("anna.schmidt%40example.com", "acme+gmbh", "j.doe%40example.org", "renewal", "q4+pipeline",
                 "%2B49+170+1234567", "mueller", "invoice+2026")
_QUERIES = _Table((("?tab=activity", 4.0), ("?view=board&sort=-updated_at", 2.0), ("?page=2", 2.0),
                   ("?filter=owner%3Ame", 1.0)))
_FRAGMENTS = ("#notes", "#activity", "#emails", "#files")
_ENTRY_REFERRERS = _Table(((None, 45.0), ("https://www.google.com/", 18.0), ("https://mail.google.com/", 8.0),
                           ("https://outlook.office.com/", 6.0), ("https://www.linkedin.com/", 5.0),
                           ("https://www.bing.com/", 3.0), ("https://www.gtgcrm.com/", 6.0),
                           ("https://www.gtgcrm.com/pricing?ref=nav", 2.0),
                           ("https://app.gtgcrm.com/login?next=%2Fdashboard", 7.0)))
_CAMPAIGNS = ("?utm_source=newsletter&utm_medium=email&utm_campaign=nov",
              "?utm_source=linkedin&utm_medium=social&utm_campaign=q4-launch",
              "?utm_source=google&utm_medium=cpc&utm_campaign=crm-trial&utm_term=crm+software")
_ELEMENTS = ("button#save", "button#cancel", "a.nav-contacts", "a.nav-deals", "button.add-contact", "button#export",
             "input#search", "li.deal-card", "button.send-email", "a.breadcrumb", "button#filter", "div.pipeline-stage")
_CLICKS_PER_PAGE = (0, 0, 0, 1, 1, 1, 2, 2, 3, 4)
_CUSTOM = ("report_exported", "contact_imported", "deal_created", "email_sent", "search_performed", "filter_applied")
_PUBLIC_PAGES = (("https://app.gtgcrm.com/book/{ws}/intro-call", "Book a meeting"),
                 ("https://app.gtgcrm.com/book/{ws}/demo", "Book a demo"),
                 ("https://forms.gtgcrm.com/f/{ws}/contact-us", "Contact us"),
                 ("https://forms.gtgcrm.com/f/{ws}/newsletter", "Newsletter sign-up"),
                 ("https://app.gtgcrm.com/share/reports/{n}", "Shared report"))

_Event = tuple[int, str, str]


def _page(rng: random.Random) -> tuple[str, str]:
    """A page of the web app as (url, title), with query strings and fragments as real trackers record them."""
    path, title = _PAGES.pick(rng)
    if "{n}" in path:
        path = path.replace("{n}", str(rng.randrange(1, 60_000)))
    if path == "/search":
        path += f"?q={rng.choice(_SEARCH_TERMS)}"
    elif rng.random() < 0.10:
        path += _QUERIES.pick(rng)
    if rng.random() < 0.04:
        path += rng.choice(_FRAGMENTS)
    return f"https://app.gtgcrm.com{path}", title


def _custom_properties(rng: random.Random, event_type: str, plan: str) -> str:
    if event_type == "report_exported":
        fmt = rng.choice(("csv", "xlsx", "pdf"))
        return f'{{"report_id":{rng.randrange(1, 5000)},"format":"{fmt}","plan":"{plan}"}}'
    if event_type == "contact_imported":
        return f'{{"source":"{rng.choice(("csv", "google", "outlook"))}","rows":{rng.randrange(1, 20000)},"plan":"{plan}"}}'
    if event_type == "deal_created":
        amount = rng.randrange(500, 250_000) / 2
        return (f'{{"amount":{amount},"currency":"{rng.choice(("EUR", "USD", "GBP"))}",'
                f'"stage":"{rng.choice(("lead", "qualified", "proposal"))}","plan":"{plan}"}}')
    if event_type == "email_sent":
        return f'{{"template":"{rng.choice(("follow_up", "intro", "meeting_recap"))}","plan":"{plan}"}}'
    if event_type == "search_performed":
        return f'{{"results":{rng.randrange(0, 400)},"plan":"{plan}"}}'
    return f'{{"filter":"{rng.choice(("owner:me", "stage:won", "created:last_30_days"))}","plan":"{plan}"}}'


class _Sessions:
    """Builds one visit as a list of events whose offsets are seconds to minutes apart."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def human(self, p: _Profile) -> list[_Event]:
        """session_start, page views each followed by a few clicks and the odd custom event, session_end.

        The url and referrer members are rendered once per page and shared by the events on that page."""
        rng, keep, plan = self.rng, p.keep_nulls, p.plan
        n_pages = min(25, 1 + int(rng.expovariate(1 / 2.6)))
        url, title, referrer = self._entry(p)
        page = _text_member("url", url, keep) + _text_member("referrer", referrer, keep)
        start_props = f',"properties":{{"plan":"{plan}","locale":"{p.locale}"}}'
        events: list[_Event] = [(0, "session_start", page + start_props)]
        t = 150 + rng.randrange(900)
        view_type = "screen_view" if p.app else "page_view"
        for i in range(n_pages):
            if i:
                t += 2000 + min(900_000, int(rng.expovariate(1 / 45_000)))
                referrer = url
                url, title = (None, None) if p.app else _page(rng)
                page = _text_member("url", url, keep) + _text_member("referrer", referrer, keep)
            events.append((t, view_type, page + self._view_props(p, title)))
            for _ in range(rng.choice(_CLICKS_PER_PAGE)):
                t += 800 + min(300_000, int(rng.expovariate(1 / 9000)))
                events.append((t, "click", f'{page},"properties":{{"element":"{rng.choice(_ELEMENTS)}","plan":"{plan}"}}'))
            if rng.random() < 0.07:
                t += 3000 + int(rng.expovariate(1 / 20_000))
                custom = rng.choice(_CUSTOM)
                events.append((t, custom, f'{page},"properties":{_custom_properties(rng, custom, plan)}'))
        if rng.random() < 0.85:
            t += 5000 + int(rng.expovariate(1 / 30_000))
            events.append((t, "session_end", f'{page},"properties":{{"duration_ms":{t},"events":{len(events) + 1}}}'))
        return events

    def bot(self, p: _Profile) -> list[_Event]:
        """A crawl of a workspace's public booking pages, forms and shared reports: page views only."""
        rng = self.rng
        events: list[_Event] = []
        t = 0
        for _ in range(min(60, 1 + int(rng.expovariate(1 / 8.5)))):
            template, title = rng.choice(_PUBLIC_PAGES)
            url = template.format(ws=p.workspace_id, n=f"{rng.getrandbits(40):010x}")
            props = ',"properties":null' if rng.random() < 0.3 else f',"properties":{{"title":"{title}"}}'
            events.append((t, "page_view", f'{_text_member("url", url, True)},"referrer":null{props}'))
            t += 500 + int(rng.expovariate(1 / 6000))
        return events

    def _entry(self, p: _Profile) -> tuple[str | None, str | None, str | None]:
        """(url, title, referrer) of the landing page; apps have no url, direct traffic no referrer."""
        if p.app:
            return None, None, None
        rng = self.rng
        url, title = _page(rng)
        referrer = _ENTRY_REFERRERS.pick(rng)
        if referrer is not None and "?" not in url and rng.random() < 0.3:
            url += rng.choice(_CAMPAIGNS)
        return url, title, referrer

    def _view_props(self, p: _Profile, title: str | None) -> str:
        """Web views report the document title, app views the screen name; some trackers send nothing."""
        rng = self.rng
        if rng.random() < 0.1:
            return ',"properties":null' if p.keep_nulls else ""
        if p.app:
            return f',"properties":{{"screen":"{rng.choice(_SCREENS)}","plan":"{p.plan}"}}'
        return f',"properties":{{"title":"{title} | GTG CRM","plan":"{p.plan}"}}'


def _text_member(name: str, value: str | None, keep_nulls: bool) -> str:
    """Like `_member` for values known to need no JSON escaping (our own urls), without `json.dumps`'s cost."""
    if value is None:
        return f',"{name}":null' if keep_nulls else ""
    return f',"{name}":"{value}"'


# --------------------------------------------------------------------------------------------------------------
# Rendering: ids, timestamps, lines.
# --------------------------------------------------------------------------------------------------------------

_M62 = (1 << 62) - 1


class _EventIds:
    """UUIDv4-shaped ids that are guaranteed distinct: the 62 low bits are a counter times an odd constant
    (a bijection modulo 2**62), the other 60 free bits random. Distinct ids are what let a reader tell a
    duplicate line from a fresh event without doubt."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.counter = rng.getrandbits(62)

    def next(self) -> str:
        self.counter += 1
        low = (self.counter * 0x9E3779B97F4A7C15) & _M62
        high = self.rng.getrandbits(60)
        return (f"{high >> 28:08x}-{(high >> 12) & 0xFFFF:04x}-4{high & 0xFFF:03x}-"
                f"{0x8000 | low >> 48:04x}-{low & 0xFFFFFFFFFFFF:012x}")


class _Clock:
    """Formats instants (ms since the epoch, UTC) as RFC 3339 in the profile's offset; tables make it cheap."""

    def __init__(self) -> None:
        self._times = [f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)]
        self._dates: dict[int, str] = {}

    def date(self, day: int) -> str:
        text = self._dates.get(day)
        if text is None:
            text = self._dates[day] = (_EPOCH + dt.timedelta(days=day)).isoformat()
        return text

    def format(self, t_ms: int, p: _Profile) -> str:
        day, ms = divmod(t_ms + p.offset_ms, _DAY_MS)
        seconds, millis = divmod(ms, 1000)
        digits = p.fraction_digits
        if digits == 0:
            fraction = ""
        elif digits == 3:
            fraction = f".{millis:03d}"
        else:
            fraction = f".{millis:03d}{t_ms * 7919 % 1000:03d}"
        return f"{self.date(day)}T{self._times[seconds]}{fraction}{p.offset}"


# --------------------------------------------------------------------------------------------------------------
# Defects: duplicates and bad lines.
# --------------------------------------------------------------------------------------------------------------


class _DuplicatePool:
    """Bounded memory of earlier valid lines to repeat: most repeats are recent (same file, a retried batch),
    some come from a slowly refreshed sample of older lines (a later file or the next day)."""

    def __init__(self) -> None:
        self.recent: list[str] = []
        self.old: list[str] = []
        self._pos = 0
        self._seen = 0

    def __bool__(self) -> bool:
        return bool(self.recent)

    def add(self, line: str, rng: random.Random) -> None:
        if len(self.recent) < _RECENT_LINES:
            self.recent.append(line)
        else:
            self.recent[self._pos] = line
            self._pos = (self._pos + 1) % _RECENT_LINES
        self._seen += 1
        if self._seen % _OLD_EVERY == 0:
            if len(self.old) < _OLD_LINES:
                self.old.append(line)
            else:
                self.old[rng.randrange(_OLD_LINES)] = line

    def pick(self, rng: random.Random) -> str:
        pool = self.old if self.old and rng.random() < 0.3 else self.recent
        return pool[rng.randrange(len(pool))]


_BAD_KIND_TABLE = _Table(zip(BAD_KINDS, (20.0, 25.0, 20.0, 20.0, 15.0)))
_REQUIRED = ("event_id", "workspace_id", "event_type", "occurred_at", "consent")
_HTML_ERROR = ("<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center>"
               "<hr><center>nginx</center></body></html>")


def _dumps(obj: dict[str, object]) -> str:
    """Compact JSON like the trackers send; key order is the insertion order, so output stays deterministic."""
    return json.dumps(obj, separators=(",", ":")) + "\n"


def _broken_json(rng: random.Random, line: str) -> str:
    """Text no JSON parser accepts, not even lenient ones (trailing commas, NaN): a truncated line (a
    tracker killed mid-write), a proxy's error page, a Python repr, an unquoted value."""
    body = line.rstrip("\n")
    r = rng.random()
    if r < 0.6:
        return body[: rng.randrange(1, len(body) - 1)] + "\n"
    if r < 0.75:
        return _HTML_ERROR + "\n"
    if r < 0.9:
        return body.replace('"workspace_id":"', '"workspace_id":', 1) + "\n"
    return repr(json.loads(body)) + "\n"


def _missing_field(rng: random.Random, obj: dict[str, object], day_ms: int) -> None:
    """A required member gone (an old tracker, a hand-written import), or no identifier at all."""
    r = rng.random()
    if r < 0.6:
        del obj[rng.choice(_REQUIRED)]
    elif r < 0.8:
        obj.pop("user_id", None)
        obj.pop("anonymous_id", None)
    elif r < 0.9:
        obj["user_id"] = None
        obj["anonymous_id"] = None
    else:
        consent = obj["consent"]
        assert isinstance(consent, dict)
        del consent[rng.choice(("analytics", "ads"))]


def _wrong_type(rng: random.Random, obj: dict[str, object], day_ms: int) -> None:
    """Right member, wrong JSON type: epoch millis for a date-time, "yes" for a boolean, a list for an object."""
    variant = rng.randrange(6)
    if variant == 0:
        obj["occurred_at"] = day_ms + rng.randrange(_DAY_MS)
    elif variant == 1:
        consent = obj["consent"]
        assert isinstance(consent, dict)
        consent["analytics"] = rng.choice(("yes", "true", "1"))
    elif variant == 2:
        obj["properties"] = [rng.choice(_ELEMENTS), "click"]
    elif variant == 3:
        obj["ip"] = int(ipaddress.IPv4Address(_ipv4(rng)))
    elif variant == 4:
        obj["workspace_id"] = rng.randrange(1, 10_000)
    else:
        obj["consent"] = "granted"


def _bad_format(rng: random.Random, obj: dict[str, object], day_ms: int) -> None:
    """A string of the right type but the wrong shape: impossible IPs, non-UUID ids, display-cased types."""
    variant = rng.randrange(4)
    if variant == 0:
        obj["ip"] = rng.choice(("999.1.2.3", "not-an-ip", "192.168.1", "2001:db8::zz", "256.256.256.256"))
    elif variant == 1:
        event_id = str(obj["event_id"])
        obj["event_id"] = rng.choice((event_id.replace("-", ""), "evt_" + event_id[:8], "{" + event_id + "}"))
    elif variant == 2:
        obj["event_type"] = rng.choice(("Page View", "pageView", "page-view", "1st_visit", "CLICK"))
    else:
        obj["workspace_id"] = rng.choice(("ws 0001", "ws/0001", "", "ws_0001;drop"))


def _impossible_timestamp(rng: random.Random, obj: dict[str, object], day_ms: int) -> None:
    """Calendar- or format-impossible date-times, a missing offset, or a clock gone wild (2199, 1970): the
    last two are well-formed, the pipeline rejects them by their distance from the landing day."""
    day = (_EPOCH + dt.timedelta(milliseconds=day_ms)).isoformat()
    year, month, dom = day.split("-")
    hh, mm, ss = rng.randrange(24), rng.randrange(60), rng.randrange(60)
    variant = rng.randrange(6)
    obj["occurred_at"] = (
        f"{year}-02-30T{hh:02d}:{mm:02d}:{ss:02d}Z",
        f"{year}-13-{dom}T{hh:02d}:{mm:02d}:{ss:02d}+01:00",
        f"{day}T25:{mm:02d}:{ss:02d}Z",
        f"{day}T{hh:02d}:{mm:02d}:{ss:02d}",
        f"2199-{month}-{dom}T{hh:02d}:{mm:02d}:{ss:02d}.000Z",
        "1970-01-01T00:00:00Z",
    )[variant]


_CORRUPTORS = {"missing_field": _missing_field, "wrong_type": _wrong_type, "bad_format": _bad_format,
               "impossible_timestamp": _impossible_timestamp}


# --------------------------------------------------------------------------------------------------------------
# Output.
# --------------------------------------------------------------------------------------------------------------


class _LandingWriter:
    """Writes one day's lines to ceil(lines / file_events) files under `dt=<day>/` through fsspec."""

    def __init__(self, out: str, compress: bool, file_events: int) -> None:
        self.fs, self.root = fsspec.core.url_to_fs(out)
        self.root = self.root.rstrip("/")
        self.out = out if out.endswith("/") else out + "/"
        self.compress = compress
        self.file_events = file_events
        self.files: list[str] = []
        self._raw: IO[bytes] | None = None
        self._handle: IO[bytes] | None = None
        self._buf: list[str] = []
        self._day = ""
        self._seq = 0
        self._left_in_day = 0
        self._left_in_file = 0

    def begin_day(self, day: str, lines: int) -> None:
        self._day, self._seq, self._left_in_day = day, 0, lines
        if lines:
            self.fs.makedirs(f"{self.root}/dt={day}", exist_ok=True)

    def write(self, line: str) -> None:
        if self._left_in_file == 0:
            self._open()
        self._buf.append(line)
        self._left_in_file -= 1
        if self._left_in_file == 0:
            self._close()
        elif len(self._buf) >= _WRITE_BATCH:
            self._flush()

    def _open(self) -> None:
        name = f"dt={self._day}/events-{self._seq:05d}.ndjson" + (".gz" if self.compress else "")
        self._seq += 1
        self._left_in_file = min(self.file_events, self._left_in_day)
        self._left_in_day -= self._left_in_file
        self._raw = self.fs.open(f"{self.root}/{name}", "wb")
        # No file name and mtime 0 in the gzip header: same arguments, same bytes.
        self._handle = (gzip_lib.GzipFile(filename="", mode="wb", fileobj=self._raw, compresslevel=_GZIP_LEVEL, mtime=0)
                        if self.compress else self._raw)
        self.files.append(self.out + name)

    def close(self) -> None:
        """Finish a file left open by an error, so no gzip stream is left without its trailer."""
        if self._handle is not None:
            self._close()

    def _flush(self) -> None:
        assert self._handle is not None
        self._handle.write("".join(self._buf).encode())
        self._buf.clear()

    def _close(self) -> None:
        self._flush()
        assert self._handle is not None and self._raw is not None
        if self._handle is not self._raw:
            self._handle.close()
        self._raw.close()
        self._handle = self._raw = None


# --------------------------------------------------------------------------------------------------------------
# Orchestration.
# --------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class GenerationStats:
    """What was written, so tests and benchmarks can assert exact counts.

    Invariants: lines == valid_events + duplicate_lines + bad_lines, and per landing day
    lines_by_day[d] == valid_by_day[d] + duplicates_by_day[d] + bad_by_day[d]. A duplicate counts on the day it
    lands. late_events counts valid events whose occurred_at (UTC) is on a day before their landing day.
    """

    lines: int = 0
    valid_events: int = 0
    duplicate_lines: int = 0
    bad_lines: int = 0
    late_events: int = 0
    bad_by_kind: dict[str, int] = dataclasses.field(default_factory=dict)
    files: list[str] = dataclasses.field(default_factory=list)
    lines_by_day: dict[str, int] = dataclasses.field(default_factory=dict)
    valid_by_day: dict[str, int] = dataclasses.field(default_factory=dict)
    duplicates_by_day: dict[str, int] = dataclasses.field(default_factory=dict)
    bad_by_day: dict[str, int] = dataclasses.field(default_factory=dict)
    workspaces: list[str] = dataclasses.field(default_factory=list)


def _largest_remainder(total: int, weights: Sequence[float]) -> list[int]:
    """Split `total` proportionally to `weights` into integers that sum to exactly `total`.

    Exact fractions, not floats: no part ever exceeds its proportional ceiling, so splitting a day's defects
    into bad and duplicate lines can never ask for more lines than the day has."""
    fractions = [Fraction(w) for w in weights]
    weight_sum = sum(fractions)
    if total == 0 or weight_sum <= 0:
        return [0] * len(weights)
    exact = [total * w / weight_sum for w in fractions]
    counts = [math.floor(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: (counts[i] - exact[i], i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _day_weights(rng: random.Random, days: Sequence[dt.date]) -> list[float]:
    """Business traffic: weekends are quiet; each day gets a little noise."""
    factor = {5: 0.55, 6: 0.45}
    return [factor.get(d.weekday(), 1.0) * rng.uniform(0.9, 1.1) for d in days]


class _Generator:
    """Produces the lines of each landing day, interleaving valid, duplicate and bad lines at random."""

    def __init__(self, rng: random.Random, population: _Population) -> None:
        self.rng = rng
        self.population = population
        self.sessions = _Sessions(rng)
        self.ids = _EventIds(rng)
        self.clock = _Clock()
        self.duplicates = _DuplicatePool()

    def session(self, landing_day: int) -> tuple[list[str], bool]:
        """Rendered lines of one visit that lands on `landing_day` (days since the epoch), and whether late."""
        rng = self.rng
        late = False
        if rng.random() < _BOT_SESSION_SHARE:
            profile = self.population.bot(rng)
            events = self.sessions.bot(profile)
            start_ms = (landing_day * 86_400 + rng.randrange(86_400)) * 1000 + rng.randrange(1000)
        else:
            profile = self.population.returning(rng)
            events = self.sessions.human(profile)
            late = rng.random() < _LATE_SESSION_SHARE
            day = landing_day - (_LATE_LAG_DAYS.pick(rng) if late else 0)
            start_ms = self._start(day, profile)
        # Nothing may occur after the end of the day the visit started on: so on-time events never occur after
        # their landing day, and late ones end before their landing day begins.
        day_end = (start_ms // _DAY_MS + 1) * _DAY_MS - 1
        start_ms = min(start_ms, day_end - events[-1][0])
        return self.render(profile, start_ms, events), late

    def _start(self, day: int, profile: _Profile) -> int:
        """Visits follow office hours in the visitor's own time zone."""
        rng = self.rng
        local_second = _HOURS.pick(rng) * 3600 + rng.randrange(3600)
        utc_second = (local_second - profile.offset_ms // 1000) % 86_400
        return (day * 86_400 + utc_second) * 1000 + rng.randrange(1000)

    def render(self, p: _Profile, start_ms: int, events: Sequence[_Event]) -> list[str]:
        next_id, fmt, ws, ids, consent = self.ids.next, self.clock.format, p.workspace_id, p.ids, p.consent
        return [
            f'{{"event_id":"{next_id()}","workspace_id":"{ws}","event_type":"{event_type}",'
            f'"occurred_at":"{fmt(start_ms + offset, p)}"{ids}{tail}{consent}}}\n'
            for offset, event_type, tail in events
        ]

    def bad(self, landing_day: int) -> tuple[str, str]:
        """(kind, line): a realistic event with a fresh id and exactly one defect."""
        rng = self.rng
        kind = _BAD_KIND_TABLE.pick(rng)
        profile = self.population.returning(rng)
        _, event_type, tail = rng.choice(self.sessions.human(profile)[:3])
        day_ms = landing_day * _DAY_MS
        line = self.render(profile, day_ms + rng.randrange(_DAY_MS), [(0, event_type, tail)])[0]
        if kind == "broken_json":
            return kind, _broken_json(rng, line)
        obj = json.loads(line)
        _CORRUPTORS[kind](rng, obj, day_ms)
        return kind, _dumps(obj)


def _validate_arguments(events: int, days: int, file_events: int, bad_share: float, duplicate_share: float) -> None:
    if events < 0:
        raise ValueError("events must be >= 0")
    if days < 1:
        raise ValueError("days must be >= 1")
    if file_events < 1:
        raise ValueError("file_events must be >= 1")
    for name, share in (("bad_share", bad_share), ("duplicate_share", duplicate_share)):
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1")
    if bad_share + duplicate_share > 1.0:
        raise ValueError("bad_share + duplicate_share must not exceed 1")


def generate_events(
    out: str,
    *,
    events: int,
    seed: int = 7,
    days: int = 7,
    end_date: dt.date | None = None,
    gzip: bool = False,
    file_events: int = 50_000,
    bad_share: float = 0.01,
    duplicate_share: float = 0.01,
    workspaces_path: str | Path | None = None,
) -> GenerationStats:
    """Write `events` NDJSON lines (valid, duplicate and bad ones together) to `<out>/dt=YYYY-MM-DD/` for the
    `days` landing days ending at `end_date` (default: today in UTC), and return exact counts.

    `out` is a local folder or any fsspec URL (`memory://...`, `s3://...`). The same arguments always give
    byte-identical files. Existing files with the same names are overwritten; others are left alone. The
    workspaces the events belong to are listed in the stats and, given `workspaces_path`, registered there (the
    platform takes events only of workspaces it knows).
    """
    _validate_arguments(events, days, file_events, bad_share, duplicate_share)
    end = end_date or dt.datetime.now(dt.timezone.utc).date()
    window = [end - dt.timedelta(days=days - 1 - i) for i in range(days)]
    rng = random.Random(seed)
    lines_per_day = _largest_remainder(events, _day_weights(rng, window))
    bad_total = min(events, int(events * bad_share + 0.5))
    dup_total = min(events - bad_total, int(events * duplicate_share + 0.5))
    defects_per_day = _largest_remainder(bad_total + dup_total, lines_per_day)
    bad_per_day = _largest_remainder(bad_total, defects_per_day)

    stats = GenerationStats(bad_by_kind={k: 0 for k in BAD_KINDS})
    writer = _LandingWriter(out, gzip, file_events)
    population = _Population(seed, events)
    generator = _Generator(rng, population)
    stats.workspaces = [population.workspace(i)[0] for i in range(population.workspaces)]
    if workspaces_path is not None:
        WorkspaceRegistry(workspaces_path).register(stats.workspaces, "sandbox")
    try:
        for day, n, defects, bad in zip(window, lines_per_day, defects_per_day, bad_per_day):
            _generate_day(generator, writer, stats, day, n, n - defects, defects - bad, bad)
    finally:
        writer.close()
    stats.files = sorted(writer.files)
    return stats


def _generate_day(generator: _Generator, writer: _LandingWriter, stats: GenerationStats, day: dt.date,
                  n: int, valid: int, dups: int, bad: int) -> None:
    """Emit one landing day's lines in a random interleaving of exactly `valid`, `dups` and `bad` lines.

    Drawing each line's kind with probability proportional to what is left is a uniform shuffle of the day's
    kinds done in a stream (nothing is held back), and it hits the planned counts exactly."""
    rng, pool, write = generator.rng, generator.duplicates, writer.write
    random_, add = rng.random, pool.add
    day_text = day.isoformat()
    day_number = (day - _EPOCH).days
    writer.begin_day(day_text, n)
    written_valid = written_dups = written_bad = late_total = 0
    session: list[str] = []
    pos = late = 0
    for _ in range(n):
        r = random_() * (valid + dups + bad)
        if r < valid or (r < valid + dups and valid and not pool):
            if pos == len(session):
                session, late = generator.session(day_number)
                pos = 0
            line = session[pos]
            pos += 1
            valid -= 1
            written_valid += 1
            late_total += late
            add(line, rng)
        elif r < valid + dups and pool:
            line = pool.pick(rng)
            dups -= 1
            written_dups += 1
        else:
            # A duplicate with nothing before it to repeat (only possible in tiny runs) becomes a bad line.
            if r < valid + dups:
                dups -= 1
            else:
                bad -= 1
            kind, line = generator.bad(day_number)
            stats.bad_by_kind[kind] += 1
            written_bad += 1
        write(line)
    stats.lines += n
    stats.valid_events += written_valid
    stats.duplicate_lines += written_dups
    stats.bad_lines += written_bad
    stats.late_events += late_total
    stats.lines_by_day[day_text] = n
    stats.valid_by_day[day_text] = written_valid
    stats.duplicates_by_day[day_text] = written_dups
    stats.bad_by_day[day_text] = written_bad


# --------------------------------------------------------------------------------------------------------------
# CLI.
# --------------------------------------------------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.sandbox.events",
        description="Write seeded sandbox usage events (NDJSON) to a landing folder or fsspec URL.",
    )
    parser.add_argument("--events", type=int, required=True, help="total lines to write (all kinds)")
    parser.add_argument("--out", required=True, help="landing folder or fsspec URL")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--end-date", type=dt.date.fromisoformat, default=None, help="last landing day, YYYY-MM-DD")
    parser.add_argument("--gzip", action="store_true", help="write .ndjson.gz files")
    parser.add_argument("--file-events", type=int, default=50_000, help="maximum lines per file")
    parser.add_argument("--bad-share", type=float, default=0.01)
    parser.add_argument("--duplicate-share", type=float, default=0.01)
    parser.add_argument("--workspaces", default=str(paths.workspaces_path()),
                        help="workspace registry to register the generated workspaces in")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the generator and print its stats as JSON on stdout (counts only: no personal data anywhere)."""
    args = _parse_args(argv)
    stats = generate_events(
        args.out, events=args.events, seed=args.seed, days=args.days, end_date=args.end_date, gzip=args.gzip,
        file_events=args.file_events, bad_share=args.bad_share, duplicate_share=args.duplicate_share,
        workspaces_path=args.workspaces,
    )
    report = dataclasses.asdict(stats)
    report["file_count"] = len(stats.files)
    if len(stats.files) > 20:
        del report["files"]
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
