"""A model of a shared shape names its contract instead of describing its columns again: the loader gives it the
contract's columns, in order, with their descriptions; the build holds the SELECT to exactly them and writes
those descriptions as the column comments."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from assets.sql_models import ModelError, build, load_models
from pipelines import ad_reporting
from pipelines.catalog import DECLARED_TABLES

_ACCOUNT_ROW = ("SELECT DATE '2026-12-01' AS date_day, 'google_ads' AS platform, 'ws_1' AS workspace_id, "
                "'c1' AS connection_id, '1234567890' AS account_id, 'Shop' AS account_name, 'JPY' AS currency, "
                "CAST(3 AS BIGINT) AS clicks, CAST(40 AS BIGINT) AS impressions, "
                "CAST(1200 AS DECIMAL(38, 6)) AS spend, 1.5 AS conversions, CAST(9000 AS DOUBLE) AS conversions_value")


def _load(tmp_path: Path, header: str, sql: str = _ACCOUNT_ROW):
    (tmp_path / "staging").mkdir(parents=True)
    (tmp_path / "marts").mkdir()
    (tmp_path / "marts" / "shaped.sql").write_text(f"/*\ndescription: x\nmaterialized: table\n{header}*/\n{sql}\n")
    return load_models(set(DECLARED_TABLES), tmp_path)["analytics.shaped"]


def test_a_contract_gives_the_model_its_columns_in_order_and_their_descriptions(tmp_path: Path) -> None:
    model = _load(tmp_path / "models", "contract: {ad_report: account}\ntests:\n  - unique: [account_id, date_day]\n")
    assert list(model.columns) == ["date_day", "platform", "workspace_id", "connection_id", "account_id",
                                   "account_name", "currency", "clicks", "impressions", "spend", "conversions",
                                   "conversions_value"]
    assert model.columns["spend"] == ("Cost in the account's currency, major units (a currency without minor "
                                      "units, such as JPY, stays whole).")
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        assert build(con, model)["rows"] == 1
        comments = dict(con.execute("SELECT column_name, comment FROM duckdb_columns() "
                                    "WHERE table_name = 'shaped'").fetchall())
    assert comments == ad_reporting.column_docs("account")


def test_a_select_that_misses_a_contract_column_fails_its_build(tmp_path: Path) -> None:
    model = _load(tmp_path / "models", "contract: {ad_report: account}\n",
                  _ACCOUNT_ROW.replace(", CAST(9000 AS DOUBLE) AS conversions_value", ""))
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con, pytest.raises(
            ModelError, match=r"shaped\.sql: the header's columns do not match the SELECT \(undocumented: \[\], "
                              r"documented but absent: \['conversions_value'\]\)"):
        build(con, model)


@pytest.mark.parametrize(("header", "error"), [
    ("contract: {ad_report: account}\ncolumns:\n  spend: Again.\n",
     r"columns \['spend'\] are described by its contract ad_report; list only added columns"),
    ("contract: {tiktok_report: account}\n", r"contract names one of \['ad_names', 'ad_report'\] and its argument"),
    ("contract: ad_report\n", r"contract names one of \['ad_names', 'ad_report'\] and its argument, not 'ad_report'"),
    ("contract: {ad_report: keyword}\n", "contract ad_report: unknown grain 'keyword'"),
    ("contract: {ad_report: account}\ntests:\n  - unique: [ad_id]\n", r"names \['ad_id'\], not documented columns"),
])
def test_a_contract_that_cannot_apply_fails_at_load_naming_the_file(tmp_path: Path, header: str, error: str) -> None:
    with pytest.raises(ModelError, match=rf"shaped\.sql: .*{error}"):
        _load(tmp_path, header)


def test_every_ad_report_model_takes_its_columns_from_the_contract() -> None:
    models = load_models(set(DECLARED_TABLES))
    assert set(ad_reporting.COLUMN_DOCS) == set(ad_reporting.COLUMN_TYPES)
    for grain in ad_reporting.GRAINS:
        staging = [ad_reporting.staging_model(platform, grain) for platform in ad_reporting.PLATFORMS]
        for table in [ad_reporting.unified_model(grain), *staging]:
            assert models[table].header["contract"] == {"ad_report": grain}, table
            assert models[table].columns == ad_reporting.column_docs(grain), table


def test_columns_beside_a_contract_come_after_its_own(tmp_path: Path) -> None:
    model = _load(tmp_path, "contract: {ad_report: account}\ncolumns:\n  leads: Leads.\n",
                  _ACCOUNT_ROW + ", CAST(2 AS BIGINT) AS leads")
    assert model.columns == {**ad_reporting.column_docs("account"), "leads": "Leads."}


def test_meta_models_name_their_ads_with_the_ad_reports_descriptions() -> None:
    """stg_facebook_ads__ads and ad_performance_daily describe none of the ad report's columns themselves."""
    models = load_models(set(DECLARED_TABLES))
    assert ad_reporting.naming_docs("ad_group") == {c: ad_reporting.COLUMN_DOCS[c] for c in (
        "connection_id", "account_id", "account_name", "campaign_id", "campaign_name", "ad_group_id", "ad_group_name")}
    assert models["staging.stg_facebook_ads__ads"].columns == ad_reporting.naming_docs("ad")
    performance = models["analytics.ad_performance_daily"]
    assert list(performance.columns) == [*ad_reporting.columns("ad"), "leads"]
    assert performance.columns == {**ad_reporting.column_docs("ad"), "leads": performance.header["columns"]["leads"]}
