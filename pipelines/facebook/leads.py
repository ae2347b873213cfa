"""Lead forms of the pages an ad account promotes, and their leads, incrementally by creation time.

A lead is a person who filled a form: e-mail, name, phone and free-text answers. The rows carry them in
plaintext only until `StreamWriter` encrypts them under the lead's own subject key (e-mail, else phone:
`settings.LEADS`), so access, erasure and retention reach leads through the declaration alone. Meta keeps
leads for 90 days and never changes one, so each form keeps a cursor, the newest `created_time` loaded, and
later syncs ask only for leads created from that second on (`filtering` on `time_created`; the second
itself is read again so that a lead created in the same second as the cursor is not skipped, and the leads
already held are passed over: a lead never changes).
"""

from __future__ import annotations

import json
from typing import Any, Iterator

import pyarrow as pa
from facebook_business.adobjects.adaccount import AdAccount
from facebook_business.adobjects.leadgenform import LeadgenForm
from facebook_business.adobjects.page import Page

from pipelines.facebook.client import GraphClient
from pipelines.facebook.settings import (
    EMAIL_FIELDS, FIRST_LAST_FIELDS, FORM_FIELDS, LEAD_FIELDS, NAME_FIELDS, PHONE_FIELDS,
)
from pipelines.facebook.structure import graph_time
from pipelines.mail_common.columns import address, phone
from pipelines.mail_common.stage import StreamWriter

STATE_KEY = "leads_since"  # form id -> unix time of the newest lead loaded


def fetch_forms(client: GraphClient, account: dict[str, Any]) -> list[dict[str, Any]]:
    """Every lead form of every page the ad account promotes, as rows of `lead_forms`."""
    ad_account = AdAccount(f"act_{account['account_id']}", api=client.api)
    forms = []
    for pages in client.pages(lambda limit: ad_account.get_promote_pages(fields=["name"], params={"limit": limit})):
        for page in pages:
            page_node = Page(page["id"], api=client.api)
            for found in client.pages(lambda limit: page_node.get_lead_gen_forms(fields=list(FORM_FIELDS),
                                                                                  params={"limit": limit})):
                forms += [form_record(form, page["id"], account["account_id"]) for form in found]
    return forms


def form_record(form: dict[str, Any], page_id: str, account_id: str) -> dict[str, Any]:
    return {"form_id": form["id"], "account_id": account_id, "page_id": page_id, "name": form.get("name"),
            "status": form.get("status"), "created_time": graph_time(form.get("created_time")),
            "questions": json.dumps(sorted(q["key"] for q in form.get("questions") or [] if q.get("key")))}


def sync_leads(writer: StreamWriter, client: GraphClient, forms: list[dict[str, Any]],
               state: dict[str, Any]) -> Iterator[pa.Table]:
    """New leads of each form; the form's cursor advances to its newest lead."""
    cursors: dict[str, int] = dict(state.get(STATE_KEY) or {})
    for form in forms:
        since = cursors.get(form["form_id"])
        params: dict[str, Any] = {}
        if since is not None:
            params["filtering"] = [{"field": "time_created", "operator": "GREATER_THAN", "value": since - 1}]
        node = LeadgenForm(form["form_id"], api=client.api)
        for page in client.pages(lambda limit: node.get_leads(fields=list(LEAD_FIELDS), params={**params, "limit": limit})):
            records = [lead_record(lead, form) for lead in page if lead["id"] not in writer.existing]
            for record in records:
                cursors[form["form_id"]] = max(cursors.get(form["form_id"], 0), int(record["created_time"].timestamp()))
            yield from writer.upsert(records)
    state[STATE_KEY] = cursors


def lead_record(lead: dict[str, Any], form: dict[str, Any]) -> dict[str, Any]:
    """A Graph lead as a plaintext row of `leads` (personal columns encrypted by the writer)."""
    answers = {item["name"]: ", ".join(str(v) for v in item.get("values") or []) for item in lead.get("field_data") or []}
    email = address(_first(answers, EMAIL_FIELDS))
    phone_number = phone(_first(answers, PHONE_FIELDS))
    name = _first(answers, NAME_FIELDS) or " ".join(v for v in (answers.get(f) for f in FIRST_LAST_FIELDS) if v) or None
    standard = {*EMAIL_FIELDS, *PHONE_FIELDS, *NAME_FIELDS, *FIRST_LAST_FIELDS}
    custom = {k: v for k, v in sorted(answers.items()) if k not in standard}
    return {"lead_id": lead["id"], "account_id": form["account_id"], "form_id": form["form_id"], "ad_id": lead.get("ad_id"),
            "created_time": graph_time(lead["created_time"]), "email": email, "full_name": name,
            "phone_number": phone_number, "answers": json.dumps(custom, ensure_ascii=False) if custom else None}


def _first(answers: dict[str, str], names: tuple[str, ...]) -> str | None:
    return next((answers[n] for n in names if answers.get(n)), None)
