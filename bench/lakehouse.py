"""Benchmark of the lakehouse: a full build of every SQL model on Spark (local[2]) over the Parquet lake against
the same build on DuckDB, on the same generated events, on the same machine.

    python -m bench.lakehouse [--events 1000000] [--scale 10] [--out bench/out]

The DuckDB warehouse is the one `bench.base` loads (reused); the lake is loaded from the same landed files with
the same keys by the same pipeline on the lakehouse backend (once, reused; not measured). Per size it prints the
DuckDB build, the Spark build (session already started; its start is printed apart) and their ratio, and with
`--scale N` how Spark's build grows from 1x to Nx events (target: linear or better, i.e. at most N x).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from bench.base import copy_warehouse, ensure_warehouse
from bench.ingest import ensure_generated

LAKE_MARKER = "_lake.json"


def _lake(out: Path, events: int, base: Path, landing: Path) -> Path:
    """The lake (and its catalog) of `events` events, loaded once by the lakehouse backend with the base's keys."""
    from pipelines.privacy.keyring import Keyring, load_master_key
    from pipelines.usage_events import ingest
    from pipelines.warehouse import BACKEND_ENV

    folder = out / "data" / f"lakehouse-{events}"
    if (folder / LAKE_MARKER).exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(base / "keys", folder / "keys")
    print(f"loading {events} events into the lake (not measured) ...", flush=True)
    _, generated = ensure_generated(out, events, gzip=False)
    os.environ[BACKEND_ENV] = "lakehouse"
    try:
        with Keyring.open(folder / "keys" / "keyring.sqlite", load_master_key(None, folder / "keys" / "master.key",
                                                                              False)) as cipher:
            report = ingest(str(landing), cipher, warehouse_path=folder / "warehouse.duckdb", dlt_dir=folder / "dlt",
                            work_dir=folder / "work", workspaces=generated["stats"]["workspaces"])
    finally:
        del os.environ[BACKEND_ENV]
    shutil.rmtree(folder / "work", ignore_errors=True)
    (folder / LAKE_MARKER).write_text(json.dumps({"events_loaded": report.events_loaded}))
    return folder


def bench_size(out: Path, events: int) -> dict[str, Any]:
    """DuckDB and Spark full builds of every model over `events` events."""
    import duckdb

    from assets.analytics import MODELS
    from assets.spark_models import build_all
    from assets.sql_models import build, build_order
    from pipelines.catalog import DECLARED_TABLES
    from pipelines.lakehouse.spark import session

    landing, base = ensure_warehouse(out, events)
    lake = _lake(out, events, base, landing)
    run = out / "data" / f"lakehouse-run-{events}"
    copy_warehouse(base, run)
    started = time.perf_counter()
    with duckdb.connect(str(run / "warehouse.duckdb")) as con:
        for model in build_order(MODELS):
            build(con, model, True, DECLARED_TABLES)
    on_duckdb = time.perf_counter() - started
    started = time.perf_counter()
    spark = session()
    spark_start = time.perf_counter() - started
    started = time.perf_counter()
    built = build_all(spark, lake / "lakehouse", MODELS, DECLARED_TABLES)
    on_spark = time.perf_counter() - started
    shutil.rmtree(run, ignore_errors=True)
    return {"events": events, "duckdb_s": round(on_duckdb, 2), "spark_s": round(on_spark, 2),
            "spark_start_s": round(spark_start, 2), "spark_over_duckdb": round(on_spark / on_duckdb, 2),
            "sessions": built["analytics.sessions"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--scale", type=int, default=0, help="also run N x the events and print Spark's growth")
    parser.add_argument("--out", type=Path, default=Path("bench/out"))
    args = parser.parse_args(argv)
    results = [bench_size(args.out, args.events)]
    if args.scale:
        results.append(bench_size(args.out, args.events * args.scale))
    for r in results:
        print(f"{r['events']:>10} events: DuckDB {r['duckdb_s']:.2f} s, Spark local[2] {r['spark_s']:.2f} s "
              f"(session start {r['spark_start_s']:.2f} s): Spark/DuckDB {r['spark_over_duckdb']:.2f}x")
    verdict: dict[str, Any] = {"sizes": results}
    if args.scale:
        growth = results[1]["spark_s"] / results[0]["spark_s"]
        verdict["spark_growth"] = round(growth, 2)
        print(f"Spark {args.scale}x events: {growth:.2f}x the time (target at most {args.scale}x): "
              f"{'met' if growth <= args.scale else 'MISSED'}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "lakehouse-result.json").write_text(json.dumps(verdict, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
