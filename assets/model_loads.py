"""The loads a load-aware SQL model's last build reflected, so that its next build recomputes only what later
loads touched (the visitors they brought events of) instead of everyone active in its window.

A model is load-aware when its SQL reads `getvariable('gtg_loaded_after')`: rows with a greater dlt load id
came after its last build; '' (a full build, or nothing recorded) means every row is new. What a build records
is the latest *complete* load of each dataset the model reads — the smallest of them — taken before the model
reads anything: a load still running, or cut short and finished by the next ingestion, has a greater id, so
its rows count as new next time. It is recorded in the transaction that replaces the model's rows (after a
full build's CREATE: a failure in between only makes the next build recompute more).
"""

import duckdb

from pipelines.sql import ident, literal

TABLE = "staging._model_loads"


def completed(con, datasets: tuple[str, ...]) -> str:
    """The latest load id that every one of `datasets` has completed ('' while one has none)."""
    latest = []
    for dataset in datasets:
        try:
            rows = con.execute(f"SELECT max(load_id) FROM {ident(dataset)}._dlt_loads WHERE status = 0").fetchall()
        except duckdb.CatalogException:  # nothing loaded into this dataset yet
            rows = [("",)]
        latest.append(rows[0][0] or "")
    return min(latest, default="")


def seen(con, model: str) -> str:
    """What `model`'s last build recorded; '' when nothing is (first build, or the record was lost)."""
    try:
        rows = con.execute(f"SELECT loaded_until FROM {TABLE} WHERE model = ?", [model]).fetchall()
    except duckdb.CatalogException:
        return ""
    return rows[0][0] if rows else ""


def remember(con, model: str, loaded_until: str) -> None:
    """Record that `model` now reflects every load up to `loaded_until`."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {TABLE.split('.')[0]}; "
                f"CREATE TABLE IF NOT EXISTS {TABLE} (model VARCHAR PRIMARY KEY, loaded_until VARCHAR NOT NULL); "
                f"INSERT OR REPLACE INTO {TABLE} VALUES ({literal(model)}, {literal(loaded_until)})")
