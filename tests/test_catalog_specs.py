"""What the Dagster catalog shows about each asset comes from the declarations: owners, `pii` tags, column
schemas, kinds and freshness, with no code per asset."""

from __future__ import annotations

import duckdb
from dagster import AssetKey, AssetSpec, TableSchema

from assets.catalog_specs import OWNERS, PII_TAG, column_description, describe_spec, document_tables
from pipelines.catalog import DECLARED_TABLES


def _graph():
    from definitions import defs

    return defs.resolve_asset_graph()


def test_every_asset_has_an_owner_and_personal_ones_the_pii_tag() -> None:
    graph = _graph()
    nodes = {k.to_user_string(): graph.get(k) for k in graph.get_all_asset_keys()}
    assert {k for k, n in nodes.items() if list(n.owners) != OWNERS} == set()
    assert {k for k, n in nodes.items() if PII_TAG in n.tags} == {
        "raw_events/usage_events", "raw_gmail/gmail_messages", "raw_gmail/gmail_contacts",
        "raw_outlook/outlook_messages", "raw_outlook/outlook_contacts", "raw_facebook_ads/leads",
        "raw_crm_app/users", "raw_crm_app/billing_profiles", "raw_crm_app/contacts",
        "raw_contact_uploads/uploaded_contacts", "staging/stg_contacts", "analytics/contacts",
        "analytics/sessions", "analytics/visitor_days"}
    events = nodes["raw_events/usage_events"]
    assert events.kinds == {"dlt", "duckdb", "python"} and events.freshness_policy is not None
    assert events.metadata["personal_data_categories"] == (
        "user.content.raw_event, user.device.cookie_id, user.device.device_id, user.device.ip_address, "
        "user.device.user_agent, user.unique_id")
    assert events.metadata["also_loads"] == "raw_events.usage_events_quarantine, raw_events.landing_files"


def test_table_assets_carry_their_declared_column_schema() -> None:
    graph = _graph()
    for table in ("raw_events.usage_events", "raw_gmail.gmail_contacts", "raw_outlook.outlook_messages"):
        schema: TableSchema = graph.get(AssetKey(table.split("."))).metadata["dagster/column_schema"]
        assert [c.name for c in schema.columns] == list(DECLARED_TABLES[table])
    columns = {c.name: c for c in graph.get(AssetKey(["raw_events", "usage_events"])).metadata["dagster/column_schema"].columns}
    assert (columns["ip"].type, columns["ip"].tags, columns["ip"].description) == (
        "binary", {PII_TAG: ""}, "The client IP address. Personal data (user.device.ip_address), stored encrypted.")
    assert columns["event_id"].constraints.unique and not columns["event_id"].constraints.nullable
    assert columns["ip_bidx"].description == "Blind index (keyed hash) of ip: joins and counts without the value."
    assert columns["device_class"].tags == {} and columns["device_class"].description == "desktop, mobile, tablet or bot."


def test_an_undeclared_asset_keeps_its_own_attributes_and_gets_an_owner() -> None:
    spec = describe_spec(AssetSpec(key=["somewhere", "else"], owners=["alice@example.com"], tags={"x": "y"}))
    assert (list(spec.owners), dict(spec.tags), dict(spec.metadata)) == (["alice@example.com"], {"x": "y"}, {})
    assert list(describe_spec(AssetSpec(key=["somewhere", "else"])).owners) == OWNERS


def test_descriptions_become_duckdb_comments_on_the_columns_that_exist() -> None:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA raw_events; CREATE TABLE raw_events.landing_files (file_url TEXT, lines BIGINT, extra TEXT)")
    tables = {"raw_events.landing_files": DECLARED_TABLES["raw_events.landing_files"],
              "raw_events.usage_events": DECLARED_TABLES["raw_events.usage_events"]}  # not created: skipped
    assert document_tables(con, tables) == 2
    comments = dict(con.execute("SELECT column_name, comment FROM duckdb_columns() WHERE table_name = 'landing_files'").fetchall())
    assert comments == {"file_url": column_description("file_url", tables["raw_events.landing_files"]["file_url"]),
                        "lines": "Lines read.", "extra": None}
