"""Wire-level sandbox of the Graph API's Marketing endpoints, for the `facebook-business` SDK unchanged.

Why it exists: the Meta source runs the official SDK against this server (redirect: `FacebookSession.GRAPH`,
see `pipelines/sandbox/facebook/__init__.py`), so its paging, async reports, throttling and error handling are
exercised over real HTTP. The access token (`access_token` query parameter, as the SDK sends it) selects the
ad account; any API version prefix (`/v26.0`) is accepted.

Served, as the SDK calls it:
  GET  /me                                the token's user: its app-scoped id (who connected the account)
  GET  /act_ID/                           the ad account (currency, timezone_name, ...)
  GET  /act_ID/campaigns|adsets|ads|adcreatives   structure, cursor-paged (`limit` <= 500, `after`);
                                          DELETED and ARCHIVED objects only when `effective_status` lists them
                                          (parameter or `filtering`); `filtering` on `<kind>.updated_time`;
                                          field expansion (`creative{name,title}`)
  GET  /act_ID/insights                   synchronous insights (level=ad, time_increment=1, time_range,
                                          action_attribution_windows), paged
  POST /act_ID/insights                   an async report run -> {"report_run_id"}
  GET  /RUN_ID/                           async_status ("Job Running" / "Job Completed" / "Job Failed") and
                                          async_percent_completion, advancing with each poll
  GET  /RUN_ID/insights                   the run's rows, paged
  GET  /AD_ID/insights                    one ad's rows (what a naive per-ad loop asks for)
  GET  /act_ID/promote_pages              the pages the account advertises
  GET  /PAGE_ID/leadgen_forms             the page's lead forms
  GET  /FORM_ID/leads                     leads (field_data), newest first; `filtering` on time_created
Every answer carries the usage headers `x-app-usage`, `x-ad-account-usage` and `x-business-use-case-usage`:
each call uses `usage_per_call` percent of the account's budget for `usage_window_s` seconds, and a call that
would take it over 100 % is refused with code 80004 (`throttled` counts those). Errors follow Graph's JSON
error body (`error.code`, `error_subcode`, `is_transient`, `type`).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import re
import threading
import time
import urllib.parse
from collections import defaultdict, deque
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pipelines.sandbox.facebook.adaccounts import ACTION_TYPES, HISTORY_MONTHS, AdAccount, World
from pipelines.sandbox.mail.faults import Fault, FaultKind
from pipelines.sandbox.mail.http import ProviderError, Request, Response, Route, SandboxServer, decode_cursor, encode_cursor

__all__ = ["FacebookServer", "graph_error"]

_V = r"/v\d+\.\d+"
_ACT = r"(?P<node>act_\d+)"
_RUN = r"(?P<node>6\d{11})"  # report run ids: no other object id has this shape
_ID = r"(?P<node>\d+)"
_MAX_LIMIT = 500
_DEFAULT_LIMIT = 25
_HIDDEN_UNLESS_ASKED = ("DELETED", "ARCHIVED")
_EDGE_KINDS = {"campaigns": "campaign", "adsets": "adset", "ads": "ad", "adcreatives": "adcreative"}
_RATE_LIMIT_MESSAGES = {
    4: "Application request limit reached", 17: "User request limit reached",
    613: "Calls to this api have exceeded the rate limit.",
    80004: "There have been too many calls to this ad-account. Wait a bit and try again.",
}
REDUCE_DATA = "Please reduce the amount of data you're asking for, then retry your request"


def graph_error(status: int, code: int, message: str, subcode: int | None = None, *, transient: bool = False,
                kind: str = "OAuthException") -> Response:
    """Graph's JSON error body, the shape `FacebookRequestError` parses."""
    error: dict[str, Any] = {"message": message, "type": kind, "code": code, "is_transient": transient,
                             "fbtrace_id": "AsandboxTrace"}
    if subcode is not None:
        error["error_subcode"] = subcode
    return Response.json({"error": error}, status)


@dataclass
class ReportRun:
    id: str
    account: AdAccount
    rows: list[dict[str, Any]]
    fails: bool
    polls: int = 0
    time_ranges: tuple[str, str] = ("", "")


class FacebookServer(SandboxServer):
    """`with FacebookServer(world) as server: FacebookSession.GRAPH = server.url`."""

    name = "facebook"

    def __init__(self, world: World, host: str = "127.0.0.1", port: int = 0, *, usage_per_call: float = 0.5,
                 usage_window_s: float = 1.0) -> None:
        self.world = world
        self.usage_per_call = usage_per_call
        self.usage_window_s = usage_window_s
        self.throttled = 0  # calls refused because the account's budget was used up
        self.insight_ranges: list[tuple[str, str, str]] = []  # (account id, since, until) of each insights request
        self._usage: dict[str, deque[float]] = defaultdict(deque)
        self._runs: dict[str, ReportRun] = {}
        self._run_ids = itertools.count(600000000001)
        self._lock = threading.Lock()
        super().__init__(world.accounts, host, port)

    def routes(self) -> list[Route]:
        def route(method: str, pattern: str, endpoint: str, handler) -> Route:
            return Route(method, re.compile(_V + pattern + "/?"), endpoint, handler)

        return [
            route("GET", "/me", "me", self._me),
            route("GET", f"/{_ACT}", "account", self._account),
            *(route("GET", f"/{_ACT}/{edge}", edge, self._structure) for edge in _EDGE_KINDS),
            route("GET", f"/{_ACT}/insights", "insights", self._insights_sync),
            route("POST", f"/{_ACT}/insights", "insights.async", self._insights_async),
            route("GET", f"/{_ACT}/promote_pages", "promote_pages", self._pages),
            route("GET", f"/{_RUN}", "report_run", self._report_run),
            route("GET", f"/{_RUN}/insights", "report_run.insights", self._report_rows),
            route("GET", f"/{_ID}/insights", "ad.insights", self._ad_insights),
            route("GET", f"/{_ID}/leadgen_forms", "leadgen_forms", self._forms),
            route("GET", f"/{_ID}/leads", "leads", self._leads),
        ]

    # -- errors -------------------------------------------------------------------------------------------------

    def unauthenticated(self) -> Response:
        return graph_error(400, 190, "Error validating access token: Session has expired.", 463)

    def rate_limited(self, code: int = 17) -> Response:
        return graph_error(400, code, _RATE_LIMIT_MESSAGES.get(code, "Rate limit reached"), transient=True)

    def unavailable(self, status: int) -> Response:
        return graph_error(status, 2, "An unexpected error has occurred. Please retry your request later.",
                           transient=True)

    def not_found(self, request: Request) -> Response:
        return graph_error(400, 100, f"Unsupported {request.method.lower()} request.", 33, kind="GraphMethodException")

    def call(self, request: Request, route: Route | None, fault: Fault | None = None) -> Response:
        """Meta's flavours of the status faults, then usage accounting and headers on every answer."""
        account = self.account(request.token)
        if fault is not None and fault.kind is FaultKind.RATE_LIMIT:
            response = self.rate_limited(fault.code or 17)
        elif fault is not None and fault.kind is FaultKind.PROVIDER_ERROR:
            code = fault.code if fault.code is not None else 1
            message = REDUCE_DATA if (code, fault.subcode) == (1, 99) else "An unknown error occurred"
            response = graph_error(fault.status, code, message, fault.subcode, transient=code in (1, 2))
        elif account is not None and not self._use_budget(account):
            self.throttled += 1
            response = self.rate_limited(80004)
        else:
            response = super().call(request, route, fault)
        if account is not None:
            response.headers.update(self._usage_headers(account))
        return response

    # -- usage --------------------------------------------------------------------------------------------------

    def _window(self, account: AdAccount) -> deque[float]:
        calls = self._usage[account.id]
        while calls and calls[0] <= time.monotonic() - self.usage_window_s:
            calls.popleft()
        return calls

    def _use_budget(self, account: AdAccount) -> bool:
        with self._lock:
            calls = self._window(account)
            if (len(calls) + 1) * self.usage_per_call > 100:
                return False
            calls.append(time.monotonic())
            return True

    def usage_pct(self, account: AdAccount) -> float:
        with self._lock:
            return min(100.0, len(self._window(account)) * self.usage_per_call)

    def _usage_headers(self, account: AdAccount) -> dict[str, str]:
        with self._lock:
            calls = self._window(account)
            pct = min(100.0, len(calls) * self.usage_per_call)
            reset = math.ceil(calls[0] + self.usage_window_s - time.monotonic()) if calls else 0
        blocked = pct >= 100
        return {
            "x-app-usage": json.dumps({"call_count": int(pct), "total_cputime": int(pct / 2), "total_time": int(pct)}),
            "x-ad-account-usage": json.dumps({"acc_id_util_pct": pct, "reset_time_duration": max(reset, 0),
                                              "ads_api_access_tier": "standard_access"}),
            "x-business-use-case-usage": json.dumps({account.account_id: [{
                "type": "ads_insights", "call_count": int(pct), "total_cputime": int(pct / 2), "total_time": int(pct),
                "estimated_time_to_regain_access": 1 if blocked else 0, "ads_api_access_tier": "standard_access"}]}),
        }

    # -- handlers -----------------------------------------------------------------------------------------------

    def _own_account(self, request: Request) -> AdAccount:
        account = request.account
        if account is None or account.id != request.params["node"]:
            raise ProviderError(self.not_found(request))
        return account

    def _me(self, request: Request) -> Response:
        """The token's user, app-scoped (the id Meta's data-deletion callback names)."""
        if request.account is None:
            raise ProviderError(self.unauthenticated())
        return Response.json(_selected({"id": request.account.owner_user_id, "name": "Sandbox advertiser"}, request))

    def _account(self, request: Request) -> Response:
        account = self._own_account(request)
        return Response.json(_selected(account.graph_fields(), request))

    def _structure(self, request: Request) -> Response:
        """An edge's objects: hidden statuses only when asked for (the `effective_status` parameter or a
        `filtering` condition `<kind>.effective_status IN [...]`), and with `<kind>.updated_time GREATER_THAN
        <unix time>` only those updated later."""
        account = self._own_account(request)
        kind = _EDGE_KINDS[request.path.rstrip("/").rsplit("/", 1)[1]]
        wanted, updated_after = _json_arg(request, "effective_status"), None
        for condition in _json_arg(request, "filtering") or []:
            field, operator, value = (condition.get(k) for k in ("field", "operator", "value"))
            if (field, operator) == (f"{kind}.effective_status", "IN"):
                wanted = value
            elif (field, operator) == (f"{kind}.updated_time", "GREATER_THAN"):
                updated_after = int(value)
            else:
                raise ProviderError(graph_error(400, 100, f"(#100) Filtering field {field} with operation "
                                                          f"{operator} is not supported"))
        objects = sorted(account.of_kind(kind), key=lambda o: o.id)
        objects = [o for o in objects if o.status in wanted] if wanted is not None else \
            [o for o in objects if o.status not in _HIDDEN_UNLESS_ASKED]
        if updated_after is not None:
            objects = [o for o in objects if _unix(o.fields["updated_time"]) > updated_after]
        return self._page(request, [_selected(o.fields, request, account.objects) for o in objects])

    def _pages(self, request: Request) -> Response:
        account = self._own_account(request)
        return self._page(request, [{"id": account.page_id, "name": f"{account.name} page"}])

    def _forms(self, request: Request) -> Response:
        account = request.account
        if account is None or request.params["node"] != account.page_id:
            raise ProviderError(self.not_found(request))
        forms = sorted(account.forms.values(), key=lambda f: f.id)
        return self._page(request, [_selected({"id": f.id, "name": f.name, "status": f.status, "page_id": f.page_id,
                                               "created_time": f.created_time,
                                               "questions": [{"key": q, "type": "CUSTOM"} for q in f.questions]},
                                              request) for f in forms])

    def _leads(self, request: Request) -> Response:
        account = request.account
        form = account.forms.get(request.params["node"]) if account else None
        if form is None:
            raise ProviderError(self.not_found(request))
        after = None
        for condition in _json_arg(request, "filtering") or []:
            if condition.get("field") == "time_created" and condition.get("operator") == "GREATER_THAN":
                after = dt.datetime.fromtimestamp(int(condition["value"]), dt.timezone.utc)
        leads = [lead for lead in account.leads.values() if lead.form_id == form.id and (after is None or lead.created > after)]
        leads.sort(key=lambda lead: (lead.created, lead.id), reverse=True)
        return self._page(request, [_selected({
            "id": lead.id, "created_time": lead.created.strftime("%Y-%m-%dT%H:%M:%S+0000"), "ad_id": lead.ad_id,
            "form_id": lead.form_id, "field_data": lead.field_data()}, request) for lead in leads])

    def _insights_sync(self, request: Request) -> Response:
        account = self._own_account(request)
        return self._page(request, self._insight_rows(account, request.query))

    def _ad_insights(self, request: Request) -> Response:
        """One ad's insights (GET /AD_ID/insights): what a naive per-ad loop asks for."""
        account = request.account
        ad = account.objects.get(request.params["node"]) if account else None
        if ad is None or ad.kind != "ad":
            raise ProviderError(self.not_found(request))
        return self._page(request, self._insight_rows(account, request.query, ad_id=ad.id))

    def _insights_async(self, request: Request) -> Response:
        account = self._own_account(request)
        params = urllib.parse.parse_qs(request.body.decode(), keep_blank_values=True)
        rows = self._insight_rows(account, params)
        run = ReportRun(str(next(self._run_ids)), account, rows,
                        fails=self.faults.take("insights.async", (FaultKind.JOB_FAILED,)) is not None)
        with self._lock:
            self._runs[run.id] = run
        return Response.json({"report_run_id": run.id})

    def _run(self, request: Request) -> ReportRun:
        run = self._runs.get(request.params["node"])
        if run is None or run.account is not request.account:
            raise ProviderError(self.not_found(request))
        return run

    def _report_run(self, request: Request) -> Response:
        run = self._run(request)
        with self._lock:
            run.polls += 1
            done = run.polls >= self.world.report_polls
        status = ("Job Failed" if run.fails else "Job Completed") if done else "Job Running"
        percent = 100 if done and not run.fails else int(100 * run.polls / (self.world.report_polls + 1))
        return Response.json({"id": run.id, "account_id": run.account.account_id, "async_status": status,
                              "async_percent_completion": percent})

    def _report_rows(self, request: Request) -> Response:
        run = self._run(request)
        if run.fails or run.polls < self.world.report_polls:
            raise ProviderError(graph_error(400, 100, "The report is not ready.", 2108006))
        return self._page(request, run.rows)

    # -- insights -----------------------------------------------------------------------------------------------

    def _insight_rows(self, account: AdAccount, params: dict[str, list[str]],
                      ad_id: str | None = None) -> list[dict[str, Any]]:
        """Ad-level daily rows of `time_range` (the account's days), ordered by day then ad (one ad's only,
        with `ad_id`)."""
        if (params.get("level") or [""])[0] != "ad" or (params.get("time_increment") or [""])[0] != "1":
            raise ProviderError(graph_error(400, 100, "The sandbox serves level=ad with time_increment=1 only."))
        try:
            time_range = json.loads(params["time_range"][0])
            since, until = dt.date.fromisoformat(time_range["since"]), dt.date.fromisoformat(time_range["until"])
        except (KeyError, ValueError, TypeError):
            raise ProviderError(graph_error(400, 100, "(#100) time_range must be {'since':'YYYY-MM-DD','until':'YYYY-MM-DD'}"))
        today = account.today()
        oldest = _months_before(today, HISTORY_MONTHS)
        if since < oldest:
            raise ProviderError(graph_error(400, 3018, "The start date of the time range cannot be beyond 37 months "
                                                       "from the current date"))
        with self._lock:
            self.insight_ranges.append((account.id, since.isoformat(), until.isoformat()))
        windows = json.loads((params.get("action_attribution_windows") or ["[]"])[0]) or ["7d_click", "1d_view"]
        raw_fields = (params.get("fields") or [""])[0]  # comma-separated on GET, a JSON list in the async POST
        fields = set(json.loads(raw_fields) if raw_fields.startswith("[") else raw_fields.split(","))
        days = [since + dt.timedelta(days=n) for n in range((min(until, today) - since).days + 1)]
        ads = [ad_id] if ad_id else sorted(o.id for o in account.of_kind("ad"))
        rows = []
        for day, ad_id in ((d, a) for d in days for a in ads):
            figures = account.insights.get((ad_id, day))
            if figures is None:
                continue
            ad = account.objects[ad_id].fields
            row = {"account_id": account.account_id, "account_name": account.name,
                   "campaign_id": ad["campaign_id"], "campaign_name": account.objects[ad["campaign_id"]].fields["name"],
                   "adset_id": ad["adset_id"], "adset_name": account.objects[ad["adset_id"]].fields["name"],
                   "ad_id": ad_id, "ad_name": ad["name"], "account_currency": account.currency,
                   "impressions": str(figures.impressions), "reach": str(figures.reach),
                   "clicks": str(figures.clicks), "spend": _amount(figures.spend, account.minor_digits),
                   "actions": _actions(figures.actions, windows, int),
                   "action_values": _actions(figures.action_values, windows,
                                             lambda v: _amount(v, account.minor_digits))}
            row = {k: v for k, v in row.items() if k in fields and v != []}
            row.update(date_start=day.isoformat(), date_stop=day.isoformat())
            rows.append(row)
        return rows

    def _page(self, request: Request, items: list[dict[str, Any]]) -> Response:
        """One page of `items` with Graph's cursor paging (`paging.next` only when more follow)."""
        limit = min(int(request.arg("limit") or _DEFAULT_LIMIT), _MAX_LIMIT)
        after = request.arg("after")
        start = (decode_cursor(after) or {}).get("o", 0) if after else 0
        page = items[start:start + limit]
        body: dict[str, Any] = {"data": page}
        if request.arg("summary") in ("true", "True", "1"):  # the SDK asks for it on every listing
            body["summary"] = {"total_count": len(items)}
        if page:
            body["paging"] = {"cursors": {"before": encode_cursor({"o": start}),
                                          "after": encode_cursor({"o": start + len(page)})}}
            if start + len(page) < len(items):
                query = {k: v[0] for k, v in request.query.items()}
                query["after"] = body["paging"]["cursors"]["after"]
                body["paging"]["next"] = f"{self.url}{request.path}?{urllib.parse.urlencode(query)}"
        return Response.json(body)


def _selected(fields: dict[str, Any], request: Request, objects: dict[str, Any] | None = None) -> dict[str, Any]:
    """The fields the request names (and the id), as Graph answers; `creative{name,title}` expands the
    object a field refers to (looked up in `objects`) to the fields in braces."""
    return _pick(fields, _field_list(request.arg("fields") or ""), objects or {})


def _pick(fields: dict[str, Any], wanted: dict[str, str | None], objects: dict[str, Any]) -> dict[str, Any]:
    out = {"id": fields["id"]}
    for name, sub in wanted.items():
        value = fields.get(name)
        if name not in fields:
            continue
        if sub is not None and isinstance(value, dict) and value.get("id") in objects:
            value = _pick(objects[value["id"]].fields, _field_list(sub), objects)
        out[name] = value
    return out


def _field_list(text: str) -> dict[str, str | None]:
    """Graph's field syntax `a,b,c{d,e}` as {name: sub-fields in braces or None}, split at top-level commas."""
    out: dict[str, str | None] = {}
    depth, start = 0, 0
    for i, char in enumerate(text + ","):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            item = text[start:i].strip()
            if item:
                name, _, sub = item.partition("{")
                out[name] = sub[:-1] if sub else None
            start = i + 1
    return out


def _unix(graph_time: str) -> int:
    return int(dt.datetime.strptime(graph_time, "%Y-%m-%dT%H:%M:%S%z").timestamp())


def _json_arg(request: Request, name: str) -> Any:
    value = request.arg(name)
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError:
        raise ProviderError(graph_error(400, 100, f"(#100) {name} must be JSON")) from None


def _amount(value: Decimal, digits: int) -> str:
    return f"{value:.{digits}f}"


def _actions(per_type: dict[str, dict[str, Any]], windows: list[str], fmt) -> list[dict[str, Any]]:
    """Graph's actions list: one entry per action type with `value` (the default attribution setting) and one
    key per requested window; types with nothing under any of them are left out, as Meta does."""
    out = []
    for action_type in ACTION_TYPES:
        counts = per_type.get(action_type)
        if not counts:
            continue
        default = counts["7d_click"] + counts["1d_view"]
        entry = {"action_type": action_type, "value": fmt(default)}
        entry.update({w: fmt(counts[w]) for w in windows if counts.get(w)})
        if default or len(entry) > 2:
            out.append({k: str(v) for k, v in entry.items()})
    return out


def _months_before(day: dt.date, months: int) -> dt.date:
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    month += 1
    for candidate in (day.day, 30, 29, 28):
        try:
            return dt.date(year, month, candidate)
        except ValueError:
            continue
    raise AssertionError("unreachable")
