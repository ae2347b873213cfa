"""The Meta (Facebook) ads source: one connected ad account's structure, daily ad insights and lead-form leads
into `raw_facebook_ads`, leads' personal fields encrypted before dlt sees them.

Plain dlt, no Dagster: `facebook_source(session)` yields the tables of one connection (structure merged on
id, read by `updated_time` between daily full listings; insights merged on (account, ad, day) with the
lookback re-read; leads incremental by creation time); `pipelines.facebook.sync.SyncPieces` runs it as a
sequence of loads (a big sync's insights in pieces) and saves the cursors once each is loaded.
`python -m pipelines.facebook` runs it against the sandbox.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Callable, Iterator

import dlt
import pyarrow as pa

from pipelines.facebook.client import GraphClient, GraphEndpoint
from pipelines.facebook.insights import sync_insights
from pipelines.facebook.leads import fetch_forms, sync_leads
from pipelines.facebook.owner import record_owner
from pipelines.facebook.settings import (
    ACCOUNTS, AD_SETS, ADS, CAMPAIGNS, CREATIVES, DATASET_NAME, FORMS, INSIGHTS, LEADS, REAL_OPTIONS,
    SANDBOX_OPTIONS, SOURCE_NAME, SyncOptions,
)
from pipelines.facebook.structure import fetch_account, sync_structure
from pipelines.mail_common.session import SyncSession
from pipelines.mail_common.stage import Stream, stream_resource

__all__ = ["DATASET_NAME", "SOURCE_NAME", "GraphEndpoint", "facebook_source"]


@dlt.source(name=SOURCE_NAME, max_table_nesting=0)
def facebook_source(session: SyncSession | None, account_id: str | None = None,
                    now: Callable[[], dt.datetime] | None = None, options: SyncOptions | None = None,
                    piece_rows: int | None = None):
    """The tables of the session's ad account `account_id` (`None` only declares them, for Dagster).
    `piece_rows` overrides the options' insight rows per load.
    `session.endpoints` is a `GraphEndpoint`; `now` is the clock deciding the account's today (UTC; tests
    move it)."""
    cache: dict[str, Any] = {}

    def chosen() -> SyncOptions:
        base = options or (SANDBOX_OPTIONS if session.connection.sandbox else REAL_OPTIONS)
        return dataclasses.replace(base, piece_rows=piece_rows) if piece_rows else base

    def client() -> GraphClient:
        if "client" not in cache:
            cache["client"] = GraphClient(session.tokens.access_token, session.endpoints, session.report, chosen())
        return cache["client"]

    def account() -> dict[str, Any]:
        if "account" not in cache:
            cache["account"] = fetch_account(client(), account_id)
        return cache["account"]

    def forms() -> list[dict[str, Any]]:
        if "forms" not in cache:
            cache["forms"] = fetch_forms(client(), account())
        return cache["forms"]

    def clock() -> dt.datetime:
        if "now" not in cache:  # one moment for every table of the sync
            cache["now"] = now() if now else dt.datetime.now(dt.timezone.utc)
        return cache["now"]

    def structure(stream: Stream) -> Callable[[], Iterator[pa.Table]]:
        def body() -> Iterator[pa.Table]:
            yield from sync_structure(session.writer(stream), client(), account(), session.state, clock(), chosen())
        return body

    def ad_accounts() -> Iterator[pa.Table]:
        record_owner(client(), session.cipher, session.connection.workspace_id, session.state)
        yield from session.writer(ACCOUNTS).upsert([account()])

    def ad_insights() -> Iterator[pa.Table]:
        yield from sync_insights(session, client(), account(), clock(), chosen())

    def lead_forms() -> Iterator[pa.Table]:
        yield from session.writer(FORMS).upsert(forms())

    def leads() -> Iterator[pa.Table]:
        yield from sync_leads(session.writer(LEADS), client(), forms(), session.state)

    return [stream_resource(ad_accounts, ACCOUNTS),
            *(stream_resource(structure(s), s) for s in (CAMPAIGNS, AD_SETS, ADS, CREATIVES)),
            stream_resource(ad_insights, INSIGHTS), stream_resource(lead_forms, FORMS), stream_resource(leads, LEADS)]
