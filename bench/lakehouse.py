"""Benchmark of the lakehouse: a full build of every SQL model on Spark (local[2]) over the Parquet lake against
the same build on DuckDB, on the same generated events, on the same machine.

    python -m bench.lakehouse [--events 1000000] [--scale 10] [--out bench/out]

The DuckDB warehouse is the one `bench.base` loads (reused); the lake is loaded from the same landed files with
the same keys by the same pipeline on the lakehouse backend (once, reused; not measured). Per size it prints the
DuckDB build, the Spark build (session already started; its start is printed apart) and their ratios in wall
and CPU time (each engine `--rounds` times, alternating; the fastest counts), and with
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


def _jvm_cpu_s(spark) -> float:
    """CPU seconds the Spark JVM (driver and local executors) has used so far."""
    pid = spark._jvm.java.lang.ProcessHandle.current().pid()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def bench_size(out: Path, events: int, rounds: int) -> dict[str, Any]:
    """DuckDB and Spark full builds of every model over `events` events, alternating `rounds` times each; the
    fastest of each counts, with its CPU time (DuckDB's threads run in this process; Spark's in its JVM, plus
    this process as the driver's client)."""
    import duckdb

    from assets.analytics import MODELS
    from assets.spark_models import build_all
    from assets.sql_models import build, build_order
    from pipelines.catalog import DECLARED_TABLES
    from pipelines.lakehouse.spark import session

    landing, base = ensure_warehouse(out, events)
    lake = _lake(out, events, base, landing)
    run = out / "data" / f"lakehouse-run-{events}"
    started = time.perf_counter()
    spark = session()
    spark_start = time.perf_counter() - started
    timings: dict[str, list[tuple[float, float]]] = {"duckdb": [], "spark": []}
    built: dict[str, int] = {}
    for _ in range(rounds):
        copy_warehouse(base, run)
        wall, cpu = time.perf_counter(), time.process_time()
        with duckdb.connect(str(run / "warehouse.duckdb")) as con:
            for model in build_order(MODELS):
                build(con, model, True, DECLARED_TABLES)
        timings["duckdb"].append((time.perf_counter() - wall, time.process_time() - cpu))
        wall, cpu, jvm = time.perf_counter(), time.process_time(), _jvm_cpu_s(spark)
        built = build_all(spark, lake / "lakehouse", MODELS, DECLARED_TABLES)
        timings["spark"].append((time.perf_counter() - wall, time.process_time() - cpu + _jvm_cpu_s(spark) - jvm))
        print(f"  {events} events, round {len(timings['spark'])}: DuckDB {timings['duckdb'][-1][0]:.2f} s "
              f"(cpu {timings['duckdb'][-1][1]:.2f} s), Spark {timings['spark'][-1][0]:.2f} s "
              f"(cpu {timings['spark'][-1][1]:.2f} s), load average {os.getloadavg()[0]:.1f}", flush=True)
    shutil.rmtree(run, ignore_errors=True)
    (duck_s, duck_cpu), (spark_s, spark_cpu) = min(timings["duckdb"]), min(timings["spark"])
    return {"events": events, "duckdb_s": round(duck_s, 2), "duckdb_cpu_s": round(duck_cpu, 2),
            "spark_s": round(spark_s, 2), "spark_cpu_s": round(spark_cpu, 2), "spark_start_s": round(spark_start, 2),
            "spark_over_duckdb": round(spark_s / duck_s, 2), "spark_over_duckdb_cpu": round(spark_cpu / duck_cpu, 2),
            "load_average": round(os.getloadavg()[0], 1), "sessions": built["analytics.sessions"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--scale", type=int, default=0, help="also run N x the events and print Spark's growth")
    parser.add_argument("--rounds", type=int, default=2, help="builds per engine per size, alternating")
    parser.add_argument("--out", type=Path, default=Path("bench/out"))
    args = parser.parse_args(argv)
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    results = [bench_size(args.out, args.events, args.rounds)]
    if args.scale:
        results.append(bench_size(args.out, args.events * args.scale, args.rounds))
    for r in results:
        print(f"{r['events']:>10} events: DuckDB {r['duckdb_s']:.2f} s (cpu {r['duckdb_cpu_s']:.2f} s), Spark "
              f"local[2] {r['spark_s']:.2f} s (cpu {r['spark_cpu_s']:.2f} s; session start {r['spark_start_s']:.2f} s):"
              f" Spark/DuckDB {r['spark_over_duckdb']:.2f}x wall, {r['spark_over_duckdb_cpu']:.2f}x cpu")
    verdict: dict[str, Any] = {"sizes": results}
    if args.scale:
        growth = results[1]["spark_s"] / results[0]["spark_s"]
        cpu_growth = results[1]["spark_cpu_s"] / results[0]["spark_cpu_s"]
        verdict.update(spark_growth=round(growth, 2), spark_cpu_growth=round(cpu_growth, 2))
        print(f"Spark {args.scale}x events: {growth:.2f}x the time, {cpu_growth:.2f}x the cpu (target at most "
              f"{args.scale}x): {'met' if growth <= args.scale else 'MISSED'}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "lakehouse-result.json").write_text(json.dumps(verdict, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
