"""Enrichment of distinct values: user agents into browser / OS / device, IP addresses into networks.

Both run once per distinct value (a million events carry a few hundred user agents), and their results are
joined back in DuckDB, so the per-row cost stays in SQL. A value's own cost is bounded too, since a tracker
chooses it: a user agent is parsed from its first `MAX_USER_AGENT_CHARS` characters, by ua-parser's native
resolver (`ua-parser-rs`, which ua-parser picks when it is installed).
"""

from __future__ import annotations

import ipaddress
from typing import Iterable

import pyarrow as pa
from ua_parser import parse

from pipelines.usage_events.settings import IP_NETWORK_PREFIX, MAX_USER_AGENT_CHARS

UA_SCHEMA = pa.schema(
    [
        ("user_agent", pa.string()),
        ("browser_family", pa.string()),
        ("browser_version", pa.string()),
        ("os_family", pa.string()),
        ("os_version", pa.string()),
        ("device_family", pa.string()),
        ("device_class", pa.string()),
        ("is_bot", pa.bool_()),
    ]
)
IP_SCHEMA = pa.schema([("ip", pa.string()), ("ip_version", pa.int64()), ("ip_network", pa.string())])

_TABLET_HINTS = ("ipad", "tablet", "kindle", "silk", "playbook", "nexus 7", "nexus 9", "sm-t")
_DESKTOP_OS = {"Windows", "Mac OS X", "macOS", "Linux", "Ubuntu", "Chrome OS", "Fedora", "FreeBSD"}


def _version(*parts: str | None) -> str | None:
    kept = [p for p in parts if p]
    return ".".join(kept) if kept else None


def device_class(ua: str, os_family: str | None, device_family: str | None) -> str:
    """desktop, mobile, tablet or bot: what analysts group by (ua-parser itself names families only)."""
    lowered = ua.lower()
    if device_family == "Spider":
        return "bot"
    if any(hint in lowered for hint in _TABLET_HINTS) or (os_family == "Android" and "mobile" not in lowered):
        return "tablet"
    if os_family in _DESKTOP_OS and device_family in (None, "Other", "Mac"):
        return "desktop"
    if os_family in ("iOS", "Android") or "mobile" in lowered:
        return "mobile"
    return "desktop" if device_family in (None, "Other") else "mobile"


def parse_user_agents(user_agents: Iterable[str]) -> pa.Table:
    """One row per distinct user agent with its families, versions, device class and bot flag, read from the
    agent's first `MAX_USER_AGENT_CHARS` characters (agents that share them share the result)."""
    rows: dict[str, list] = {name: [] for name in UA_SCHEMA.names}
    for ua in user_agents:
        head = ua[:MAX_USER_AGENT_CHARS]
        result = parse(head)
        browser, os_, device = result.user_agent, result.os, result.device
        os_family = os_.family if os_ else None
        device_family = device.family if device else None
        klass = device_class(head, os_family, device_family)
        rows["user_agent"].append(ua)
        rows["browser_family"].append(browser.family if browser else "Other")
        rows["browser_version"].append(_version(browser.major, browser.minor) if browser else None)
        rows["os_family"].append(os_family or "Other")
        rows["os_version"].append(_version(os_.major, os_.minor) if os_ else None)
        rows["device_family"].append(device_family or "Other")
        rows["device_class"].append(klass)
        rows["is_bot"].append(klass == "bot")
    return pa.table(rows, schema=UA_SCHEMA)


def ipv4_network_sql(column: str) -> str:
    """The IPv4 network in SQL, for addresses already validated: at an octet boundary it is plain text
    surgery, and the most common case (most addresses are IPv4) never reaches Python."""
    prefix = IP_NETWORK_PREFIX[4]
    if prefix % 8:
        raise ValueError("the IPv4 network prefix must be a multiple of 8 to be computed in SQL")
    kept = prefix // 8
    octets = ", ".join([f"split_part({column}, '.', {i + 1})" for i in range(kept)] + ["'0'"] * (4 - kept))
    return f"concat_ws('.', {octets}) || '/{prefix}'"


def ip_networks(ips: Iterable[str]) -> pa.Table:
    """One row per distinct (already validated) IP with its version and truncated network.

    The network (IPv4 /24, IPv6 /48) is what analytics keeps in the clear, as Snowplow's IP anonymisation
    does; the full address is stored only encrypted. An IPv4-mapped IPv6 address (`::ffff:192.0.2.128`) is the
    IPv4 address it carries: otherwise every such address would fall into the one network `::/48`.
    """
    rows: dict[str, list] = {"ip": [], "ip_version": [], "ip_network": []}
    for ip in ips:
        address = ipaddress.ip_address(ip)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        network = ipaddress.ip_network(f"{address}/{IP_NETWORK_PREFIX[address.version]}", strict=False)
        rows["ip"].append(ip)
        rows["ip_version"].append(address.version)
        rows["ip_network"].append(str(network))
    return pa.table(rows, schema=IP_SCHEMA)
