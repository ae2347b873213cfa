"""The platform's command line: `python -m cli run` builds everything on the embedded default.

`run` generates sandbox events when the landing location is empty, materialises the whole asset graph
into the Dagster instance under DAGSTER_HOME (so the runs show in the UI afterwards) and prints what it
built. Counts only: no personal data is printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
from pathlib import Path

from pipelines import paths

DEFAULT_DAGSTER_HOME = paths.PROJECT_ROOT / ".dagster_home"
COUNTS = ("lines_read", "events_loaded", "duplicates_dropped", "lines_quarantined")


def ensure_dagster_home() -> Path:
    """DAGSTER_HOME defaults to `.dagster_home/` in the project, with the project's dagster.yaml."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(DEFAULT_DAGSTER_HOME)))
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(paths.PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    return home


def _generate_if_empty(events: int, days: int) -> None:
    from pipelines.sandbox.events import generate_events
    from pipelines.usage_events.landing import discover_files

    landing = paths.events_landing_url()
    if discover_files(landing):
        print(f"landing location {landing} has files: not generating sandbox events")
        return
    stats = generate_events(landing, events=events, days=days, end_date=dt.datetime.now(dt.timezone.utc).date())
    print(f"generated {stats.lines} sandbox event lines in {len(stats.files)} files "
          f"({stats.valid_events} events, {stats.duplicate_lines} duplicates, {stats.bad_lines} bad lines)")


def run(events: int, days: int) -> int:
    """Materialise every asset for every landed day; return a process exit code."""
    ensure_dagster_home()
    _generate_if_empty(events, days)

    from dagster import DagsterInstance
    from definitions import defs
    from pipelines.usage_events.landing import landing_days

    landed = [d.isoformat() for d in landing_days(paths.events_landing_url())]
    if not landed:
        print("nothing landed: nothing to load")
        return 0
    instance = DagsterInstance.get()
    job = defs.resolve_job_def("usage_events_job")
    ok = True
    totals = dict.fromkeys(COUNTS, 0)
    print(f"usage_events_job: one run per landed day, {landed[0]} .. {landed[-1]}")
    for day in landed:
        result = job.execute_in_process(
            instance=instance,
            partition_key=day,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            raise_on_error=False,
        )
        ok = ok and result.success
        events = result.get_asset_materialization_events()
        meta = events[-1].materialization.metadata if events else {}
        counts = ", ".join(f"{k} {meta[k].value}" for k in COUNTS if k in meta)
        for k in COUNTS:
            totals[k] += meta[k].value if k in meta else 0
        checks = sum(e.passed for e in result.get_asset_check_evaluations())
        print(f"  {day}: run {result.run_id} {'success' if result.success else 'FAILED'}: {counts}; "
              f"checks passed {checks}/{len(result.get_asset_check_evaluations())}")
    print(f"  all days: {', '.join(f'{k} {v}' for k, v in totals.items())}")
    print_warehouse_summary()
    return 0 if ok else 1


def print_warehouse_summary() -> None:
    """Row counts per table of the warehouse, read-only."""
    import duckdb

    with duckdb.connect(str(paths.warehouse_path()), read_only=True) as con:
        tables = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_name NOT LIKE '\\_dlt%' ESCAPE '\\' ORDER BY ALL"
        ).fetchall()
        print(f"warehouse {paths.warehouse_path()}:")
        for schema, table in tables:
            count = con.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchone()[0]
            print(f"  {schema}.{table}: {count} rows")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cli", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="build the whole asset graph on the embedded default")
    run_parser.add_argument("--events", type=int, default=int(os.environ.get("GTG_SANDBOX_EVENTS", "100000")),
                            help="sandbox event lines to generate when the landing location is empty")
    run_parser.add_argument("--days", type=int, default=7, help="days of sandbox events, ending today")
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args.events, args.days)
    return 2


if __name__ == "__main__":
    sys.exit(main())
