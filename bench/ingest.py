"""Benchmark of the usage-events ingestion against DuckDB's own JSON reader and dlt's plain row path.

    python -m bench.ingest [--events 1000000] [--row-sample 100000] [--scale 10] [--gzip] [--out bench/out]

One run measures, on the same generated landing files (generation is never timed, and is reused when a folder
with the same generation arguments already exists):

1. pipeline  - `pipelines.usage_events.ingest(...)` into a fresh warehouse, keyring and dlt folder;
2. floor     - DuckDB `CREATE TABLE t AS SELECT * FROM read_json(...)` of the same files into a fresh file;
               both run `--rounds` times (default 2), alternating, and the fastest of each counts;
3. dlt arrow - the same `read_json` streamed as arrow batches through a `@dlt.resource` and `pipeline.run`
               into a fresh DuckDB file: dlt's own arrow pass-through, the least any dlt load of these events
               costs (no validation, enrichment or encryption); run in the same rounds;
4. dlt rows  - a `@dlt.resource` yielding one dict per line (`json.loads`) for the first `--row-sample` lines,
               loaded with `pipeline.run` into a fresh DuckDB file (dlt's default loader format);
5. memory    - every step runs in its own child process (`python -m bench.ingest --_step ...`), which reports
               its own peak RSS (`getrusage(RUSAGE_SELF).ru_maxrss`), so steps never share memory;
6. flat mem  - with `--scale N` the pipeline also runs on N x the events (generated in their own folder);
7. agents    - with `--agents N` (default 10,000): the pipeline on N events that all carry one 1.9 KB user
               agent against N events each with its own (what a hostile tracker sends), and ua-parser's
               pure-Python resolver against its native one (`ua-parser-rs`) on a sample of those agents.

Prints a table and the target verdicts, and writes the same as JSON to `<out>/ingest-result.json`.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import gzip as gzip_lib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pipelines.usage_events.settings import MAX_USER_AGENT_CHARS

SEED = 7
DAYS = 7
END_DATE = dt.date(2026, 11, 24)
FILE_EVENTS = 50_000
MARKER = "_generated.json"
LANDING_GLOB = "dt=*/*.ndjson*"

# Targets. Every row must pass through dlt, so the main one is stated against dlt's own arrow pass-through of
# the same lines, measured side by side in the same run.
ARROW_RATIO_TARGET = 1.5
ARROW_RATIO_STRETCH = 1.25
FLOOR_RATIO_TARGET = 3.0
FLOOR_RATIO_AIM = 2.0
ROW_RATIO_TARGET = 10.0
PEAK_MB_TARGET = 1024.0
# Peak RSS is noisy by a few MB between runs; N x counts as "no more memory" within this factor of 1 x.
FLAT_TOLERANCE = 1.05
# Distinct long user agents may cost at most this factor over one common agent of the same length, for the
# same events (before the cap and the native resolver, 10,000 of them took 236 s against 2.9 s).
AGENTS_RATIO_TARGET = 1.5


# ------------------------------------------------------------------------------------------------------------
# Child steps: each runs in its own process and writes {"seconds": ..., "peak_mb": ..., ...} to a JSON file.
# ------------------------------------------------------------------------------------------------------------


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _clock() -> tuple[float, float]:
    """Wall and CPU time (all threads of this process) now."""
    return time.perf_counter(), time.process_time()


def _elapsed(start: tuple[float, float]) -> dict[str, float]:
    """Wall seconds and CPU seconds since `start`. On a machine shared with other work the wall time stretches
    with the load; the CPU time much less, so both are reported."""
    wall, cpu = _clock()
    return {"seconds": wall - start[0], "cpu_seconds": cpu - start[1]}


def generated_workspaces(landing: Path) -> list[str]:
    """The workspaces of a generated landing folder (from its marker): the ones the pipeline knows."""
    return json.loads((landing / MARKER).read_text())["stats"]["workspaces"]


def _step_pipeline(landing: Path, run_dir: Path) -> dict[str, Any]:
    from pipelines.privacy.keyring import Keyring, load_master_key
    from pipelines.usage_events import ingest

    key = load_master_key(None, run_dir / "master.key", True)
    rss_before = _peak_mb()
    with Keyring.open(run_dir / "keyring.sqlite", key) as cipher:
        start = _clock()
        report = ingest(str(landing), cipher, warehouse_path=run_dir / "warehouse.duckdb",
                        dlt_dir=run_dir / "dlt", work_dir=run_dir / "work", workspaces=generated_workspaces(landing))
        elapsed = _elapsed(start)
    return {
        **elapsed,
        "rss_before_mb": rss_before,
        "report": {**dataclasses.asdict(report), "quarantine_share": report.quarantine_share},
    }


def _step_floor(landing: Path, run_dir: Path) -> dict[str, Any]:
    import duckdb

    rss_before = _peak_mb()
    start = _clock()
    con = duckdb.connect(str(run_dir / "floor.duckdb"))
    con.execute(f"CREATE TABLE t AS {_read_json_sql(landing)}")
    con.close()
    elapsed = _elapsed(start)
    con = duckdb.connect(str(run_dir / "floor.duckdb"), read_only=True)
    rows = con.execute("SELECT count(*) FROM t").fetchone()[0]
    con.close()
    return {**elapsed, "rss_before_mb": rss_before, "rows": rows}


def _read_json_sql(landing: Path) -> str:
    """DuckDB's own reading of the landing files: the floor, and what dlt's arrow pass-through streams."""
    glob = str(landing / LANDING_GLOB).replace("'", "''")
    return f"SELECT * FROM read_json('{glob}', format='newline_delimited', ignore_errors=true)"


def _dlt_run(run_dir: Path, name: str, data) -> tuple[dict[str, float], float, Any]:
    """Load `data` (a dlt resource) with plain `pipeline.run` into a fresh DuckDB file named `name`; return
    (wall and CPU seconds, peak RSS before the run, load info)."""
    import dlt

    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{name}",
        destination=dlt.destinations.duckdb(str(run_dir / f"{name}.duckdb")),
        dataset_name=f"raw_{name}",
        pipelines_dir=str(run_dir / "dlt"),
    )
    rss_before = _peak_mb()
    start = _clock()
    info = pipeline.run(data)
    info.raise_on_failed_jobs()
    return _elapsed(start), rss_before, info


def _step_arrow(landing: Path, run_dir: Path) -> dict[str, Any]:
    import dlt
    import duckdb

    rows = {"n": 0}

    @dlt.resource(name="events")
    def events():
        with duckdb.connect() as con:
            for batch in con.sql(_read_json_sql(landing)).to_arrow_reader(50_000):
                rows["n"] += batch.num_rows
                yield batch

    elapsed, rss_before, _ = _dlt_run(run_dir, "arrow", events())
    return {**elapsed, "rss_before_mb": rss_before, "rows": rows["n"]}


def _landing_files(landing: Path) -> list[Path]:
    """The landing files in the pipeline's order (arrival day, then name)."""
    return sorted(landing.glob(LANDING_GLOB), key=lambda p: (p.parent.name, str(p)))


def _step_rows(landing: Path, run_dir: Path, sample: int) -> dict[str, Any]:
    import dlt

    files = _landing_files(landing)
    seen = {"lines": 0, "parsed": 0}

    @dlt.resource(name="events")
    def events():
        for path in files:
            opener = gzip_lib.open if path.name.endswith(".gz") else open
            with opener(path, "rb") as handle:
                for raw in handle:
                    if seen["lines"] >= sample:
                        return
                    seen["lines"] += 1
                    try:
                        row = json.loads(raw)
                    except ValueError:
                        continue
                    if isinstance(row, dict):
                        seen["parsed"] += 1
                        yield row

    elapsed, rss_before, info = _dlt_run(run_dir, "rows", events())
    formats = sorted({j.job_file_info.file_format for p in info.load_packages for j in p.jobs["completed_jobs"]})
    return {**elapsed, "rss_before_mb": rss_before, "lines": seen["lines"], "rows": seen["parsed"],
            "loader_file_formats": formats}


def _run_child_step(args: argparse.Namespace) -> int:
    landing, run_dir = Path(args._landing), Path(args._run_dir)
    if args._step == "pipeline":
        result = _step_pipeline(landing, run_dir)
    elif args._step == "floor":
        result = _step_floor(landing, run_dir)
    elif args._step == "arrow":
        result = _step_arrow(landing, run_dir)
    elif args._step == "rows":
        result = _step_rows(landing, run_dir, args._sample)
    else:
        raise SystemExit(f"unknown step {args._step!r}")
    result["peak_mb"] = _peak_mb()
    Path(args._result).write_text(json.dumps(result, indent=2, default=str))
    return 0


# ------------------------------------------------------------------------------------------------------------
# Parent: generation (reused), child processes, table and verdicts.
# ------------------------------------------------------------------------------------------------------------


def _generation_args(events: int, gzip: bool, days: int = DAYS) -> dict[str, Any]:
    return {"events": events, "seed": SEED, "days": days, "end_date": END_DATE.isoformat(), "gzip": gzip,
            "file_events": FILE_EVENTS}


def ensure_generated(out: Path, events: int, gzip: bool, days: int = DAYS) -> tuple[Path, dict[str, Any]]:
    """The landing folder for `events` lines, generated once and reused while its marker matches."""
    from pipelines.sandbox.events import generate_events

    wanted = _generation_args(events, gzip, days)
    folder = out / "data" / f"events-{events}-seed{SEED}-d{days}-{END_DATE.isoformat()}{'-gz' if gzip else ''}"
    marker = folder / MARKER
    if marker.exists():
        saved = json.loads(marker.read_text())
        if (saved.get("args") == wanted and "workspaces" in saved.get("stats", {})
                and all((folder / f).exists() for f in saved.get("files", []))):
            print(f"reusing {folder} ({events:,} lines)", flush=True)
            return folder, saved
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    print(f"generating {events:,} lines into {folder} ...", flush=True)
    start = time.perf_counter()
    stats = generate_events(str(folder), events=events, seed=SEED, days=days, end_date=END_DATE, gzip=gzip,
                            file_events=FILE_EVENTS)
    seconds = time.perf_counter() - start
    files = [os.path.relpath(f, folder) for f in stats.files]
    summary = {k: v for k, v in dataclasses.asdict(stats).items() if k != "files"}
    saved = {"args": wanted, "stats": summary, "files": files, "generation_seconds": round(seconds, 2),
             "bytes": sum((folder / f).stat().st_size for f in files)}
    marker.write_text(json.dumps(saved, indent=2))
    print(f"generated in {seconds:.1f} s (not measured)", flush=True)
    return folder, saved


_AGENT_HEAD = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0"
# Of the distinct agents, this many go through ua-parser's pure-Python resolver (the slow side, extrapolated).
_PYTHON_RESOLVER_SAMPLE = 300


def _agents_landing(out: Path, events: int, distinct: bool) -> Path:
    """A landing folder of `events` valid events of one workspace, each with a 1.9 KB user agent (under the
    contract's 2,048-character maximum): all the same one, or a distinct one each. Same bytes either way, so
    the difference is the per-value cost (parsing, encrypting each distinct agent once)."""
    folder = out / "data" / f"agents-{events}-{'distinct' if distinct else 'common'}"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "dt=2026-11-24").mkdir(parents=True)
    with open(folder / "dt=2026-11-24" / "agents.ndjson", "w") as handle:
        for n in range(events):
            agent = f"{_AGENT_HEAD} x{n if distinct else 0:07d}/{'y' * 1800}"
            handle.write(json.dumps({
                "event_id": f"00000000-0000-4000-8000-{n:012d}", "workspace_id": "ws_bench", "event_type": "page_view",
                "occurred_at": "2026-11-24T10:00:00Z", "anonymous_id": f"a-{n % 1000}", "user_agent": agent,
                "consent": {"analytics": True, "ads": False}}) + "\n")
    (folder / MARKER).write_text(json.dumps({"stats": {"workspaces": ["ws_bench"]}}))
    return folder


def bench_agents(out: Path, events: int) -> dict[str, Any]:
    """Per-value cost of user agents: the pipeline with one agent vs distinct long ones (same event count),
    and ua-parser's pure-Python resolver vs the native one on distinct long agents."""
    import ua_parser

    from pipelines.usage_events.enrich import parse_user_agents

    result: dict[str, Any] = {"events": events}
    for kind in ("common", "distinct"):
        landing = _agents_landing(out, events, kind == "distinct")
        result[f"pipeline_{kind}_s"] = run_step("pipeline", landing, out, f"agents-{kind}")["seconds"]
        shutil.rmtree(landing, ignore_errors=True)
    agents = [f"{_AGENT_HEAD} x{n:07d}/{'y' * 1800}" for n in range(_PYTHON_RESOLVER_SAMPLE)]
    python_parser = ua_parser.Parser(ua_parser.BasicResolver(ua_parser.load_builtins()))
    python_parser.parse(_AGENT_HEAD)  # both resolvers compile their rules on first use: not measured
    parse_user_agents([_AGENT_HEAD])
    start = time.perf_counter()
    for agent in agents:
        python_parser.parse(agent)
    result["python_resolver_us_per_agent"] = (time.perf_counter() - start) / len(agents) * 1e6
    start = time.perf_counter()
    parse_user_agents(agents)
    result["pipeline_parse_us_per_agent"] = (time.perf_counter() - start) / len(agents) * 1e6
    result["resolver"] = type(ua_parser.parser.resolver).__name__
    return result


def run_step(step: str, landing: Path, out: Path, tag: str, sample: int = 0) -> dict[str, Any]:
    """Run one measured step in a fresh child process and fresh folder; return what it reported."""
    run_dir = out / "runs" / tag
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    result_file = out / "runs" / f"{tag}.json"
    result_file.unlink(missing_ok=True)
    log_file = out / "runs" / f"{tag}.log"
    env = {**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false"}
    cmd = [sys.executable, "-m", "bench.ingest", "--_step", step, "--_landing", str(landing.resolve()),
           "--_run-dir", str(run_dir.resolve()), "--_result", str(result_file.resolve()), "--_sample", str(sample)]
    print(f"running {tag} ...", flush=True)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    with open(log_file, "w") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                              cwd=str(Path(__file__).resolve().parent.parent))
    process_seconds = time.perf_counter() - start
    load_after = os.getloadavg()[0]
    if proc.returncode != 0 or not result_file.exists():
        tail = log_file.read_text()[-4000:]
        raise SystemExit(f"step {tag} failed (exit {proc.returncode}); log {log_file}:\n{tail}")
    result = json.loads(result_file.read_text())
    result["process_seconds"] = process_seconds
    result["load_average"] = [round(load_before, 2), round(load_after, 2)]
    print(f"  {tag}: {result['seconds']:.2f} s ({result['cpu_seconds']:.2f} CPU s), peak {result['peak_mb']:.0f} MB, "
          f"load average {load_before:.1f} -> {load_after:.1f}", flush=True)
    shutil.rmtree(run_dir, ignore_errors=True)  # warehouses hold GBs at 10 x; keep only the numbers
    return result


def best_of(rounds: int, landing: Path, out: Path) -> dict[str, dict[str, Any]]:
    """The pipeline, the floor and dlt's arrow pass-through, run alternately `rounds` times each: the fastest
    run of each counts (the least disturbed by anything else on the machine), with the highest peak memory
    seen in any of its runs."""
    runs: dict[str, list[dict[str, Any]]] = {"pipeline": [], "floor": [], "arrow": []}
    for round_no in range(1, rounds + 1):
        for step in runs:
            runs[step].append(run_step(step, landing, out, f"{step}-x1-r{round_no}"))
    best = {}
    for step, results in runs.items():
        best[step] = {**min(results, key=lambda r: r["seconds"]),
                      "peak_mb": max(r["peak_mb"] for r in results),
                      "all_seconds": [round(r["seconds"], 2) for r in results],
                      "all_cpu_seconds": [round(r["cpu_seconds"], 2) for r in results],
                      "load_averages": [r["load_average"] for r in results]}
    return best


def _load_range(pairs: list[list[float]]) -> list[float]:
    """The lowest and highest 1-minute load average seen before and after the measured steps."""
    values = [value for pair in pairs for value in pair]
    return [min(values), max(values)]


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def build_result(args: argparse.Namespace, gen: dict[str, Any], pipe: dict[str, Any], floor: dict[str, Any],
                 arrow: dict[str, Any], rows: dict[str, Any] | None, scaled: tuple[dict[str, Any], dict[str, Any]] | None,
                 agents: dict[str, Any] | None = None) -> dict[str, Any]:
    lines = gen["stats"]["lines"]
    steps = []

    def add(name: str, n: int, seconds: float, peak: float | None, note: str = "", cpu: float | None = None,
            **extra: Any) -> None:
        steps.append({"step": name, "lines": n, "seconds": round(seconds, 3),
                      "cpu_seconds": None if cpu is None else round(cpu, 3), "events_per_s": round(n / seconds),
                      "peak_mb": None if peak is None else round(peak, 1),
                      "ratio_vs_floor": round(seconds / floor["seconds"] * (lines / n), 2), "note": note, **extra})

    rep = pipe["report"]
    add("pipeline ingest()", lines, pipe["seconds"], pipe["peak_mb"],
        f"loaded {rep['events_loaded']:,} / dup {rep['duplicates_dropped']:,} / quarantined {rep['lines_quarantined']:,}",
        pipe["cpu_seconds"])
    add("floor duckdb read_json", lines, floor["seconds"], floor["peak_mb"], f"{floor['rows']:,} rows",
        floor["cpu_seconds"])
    add("dlt arrow pass-through", lines, arrow["seconds"], arrow["peak_mb"],
        f"{arrow['rows']:,} rows of read_json, no validation or encryption", arrow["cpu_seconds"])
    if rows is not None:
        per_event = rows["seconds"] / rows["lines"]
        add(f"dlt row path ({rows['lines']:,} sample)", rows["lines"], rows["seconds"], rows["peak_mb"],
            f"format {','.join(rows['loader_file_formats'])}; per {lines:,}: {per_event * lines:.1f} s (extrapolated)",
            rows["cpu_seconds"])
    if scaled is not None:
        gen_n, pipe_n = scaled
        n_lines = gen_n["stats"]["lines"]
        rep_n = pipe_n["report"]
        add(f"pipeline ingest() x{args.scale}", n_lines, pipe_n["seconds"], pipe_n["peak_mb"],
            f"loaded {rep_n['events_loaded']:,} / dup {rep_n['duplicates_dropped']:,} / "
            f"quarantined {rep_n['lines_quarantined']:,}", pipe_n["cpu_seconds"])

    floor_ratio = pipe["seconds"] / floor["seconds"]
    arrow_ratio = pipe["seconds"] / arrow["seconds"]
    cpu_ratio = pipe["cpu_seconds"] / arrow["cpu_seconds"]
    verdicts = [{
        "target": f"pipeline within {ARROW_RATIO_TARGET:g}x of dlt's arrow pass-through (stretch {ARROW_RATIO_STRETCH:g}x)",
        "value": f"{arrow_ratio:.2f}x ({pipe['seconds']:.2f} s vs {arrow['seconds']:.2f} s; in CPU time {cpu_ratio:.2f}x, "
                 f"{pipe['cpu_seconds']:.1f} vs {arrow['cpu_seconds']:.1f} CPU s)",
        "verdict": _verdict(arrow_ratio <= ARROW_RATIO_TARGET)
        + (" (stretch met)" if arrow_ratio <= ARROW_RATIO_STRETCH else " (stretch missed)"),
    }, {
        "target": f"pipeline within {FLOOR_RATIO_TARGET:g}x of floor (aim {FLOOR_RATIO_AIM:g}x)",
        "value": f"{floor_ratio:.2f}x",
        "verdict": _verdict(floor_ratio <= FLOOR_RATIO_TARGET)
        + (" (aim met)" if floor_ratio <= FLOOR_RATIO_AIM else " (aim missed)"),
    }]
    if rows is not None:
        row_per_event = rows["seconds"] / rows["lines"]
        pipe_per_event = pipe["seconds"] / lines
        row_ratio = row_per_event / pipe_per_event
        verdicts.append({"target": f"dlt row path per event >= {ROW_RATIO_TARGET:g}x pipeline per event",
                         "value": f"{row_ratio:.1f}x ({row_per_event * 1e6:.1f} vs {pipe_per_event * 1e6:.2f} us/event; "
                                  f"row path extrapolated to {lines:,}: {row_per_event * lines:.1f} s)",
                         "verdict": _verdict(row_ratio >= ROW_RATIO_TARGET)})
    verdicts.append({"target": f"pipeline peak RSS < {PEAK_MB_TARGET:g} MB",
                     "value": f"{pipe['peak_mb']:.0f} MB (floor {floor['peak_mb']:.0f} MB)",
                     "verdict": _verdict(pipe["peak_mb"] < PEAK_MB_TARGET)})
    if scaled is not None:
        peak_n = scaled[1]["peak_mb"]
        verdicts.append({"target": f"pipeline peak RSS < {PEAK_MB_TARGET:g} MB at x{args.scale}",
                         "value": f"{peak_n:.0f} MB", "verdict": _verdict(peak_n < PEAK_MB_TARGET)})
        mem_ratio = peak_n / pipe["peak_mb"]
        verdicts.append({"target": f"x{args.scale} events in no more memory than x1 (tolerance {FLAT_TOLERANCE:g})",
                         "value": f"{peak_n:.0f} MB vs {pipe['peak_mb']:.0f} MB = {mem_ratio:.2f}x",
                         "verdict": _verdict(mem_ratio <= FLAT_TOLERANCE)})
    if agents is not None:
        ratio = agents["pipeline_distinct_s"] / agents["pipeline_common_s"]
        verdicts.append({
            "target": f"{agents['events']:,} events with distinct 1.9 KB user agents within {AGENTS_RATIO_TARGET:g}x "
                      "of the same events with one 1.9 KB agent",
            "value": f"{agents['pipeline_distinct_s']:.2f} s vs {agents['pipeline_common_s']:.2f} s = {ratio:.2f}x; "
                     f"parse {agents['pipeline_parse_us_per_agent']:.0f} us/agent ({agents['resolver']}, "
                     f"first {MAX_USER_AGENT_CHARS} characters) vs {agents['python_resolver_us_per_agent']:.0f} us/agent "
                     "with the pure-Python resolver on the whole agent",
            "verdict": _verdict(ratio <= AGENTS_RATIO_TARGET)})
    return {
        "args": {"events": args.events, "row_sample": args.row_sample, "scale": args.scale, "gzip": args.gzip,
                 "seed": SEED, "days": DAYS, "end_date": END_DATE.isoformat()},
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "load_average": _load_range(
            [*(load for r in (pipe, floor, arrow) for load in r["load_averages"]),
             *(r["load_average"] for r in (rows, scaled[1] if scaled else None) if r is not None)])},
        "generated": {"lines": lines, "bytes": gen["bytes"], "files": len(gen["files"]), "stats": gen["stats"]},
        "steps": steps,
        "verdicts": verdicts,
        "raw": {"pipeline": pipe, "floor": floor, "arrow": arrow, "rows": rows, "scaled": scaled[1] if scaled else None,
                "agents": agents,
                "scaled_generated": ({k: v for k, v in scaled[0].items() if k != "files"} if scaled else None)},
    }


def format_table(result: dict[str, Any]) -> str:
    header = ("step", "lines", "seconds", "CPU s", "events/s", "peak MB", "vs floor", "notes")
    rows = [header]
    for s in result["steps"]:
        rows.append((s["step"], f"{s['lines']:,}", f"{s['seconds']:.2f}",
                     "-" if s["cpu_seconds"] is None else f"{s['cpu_seconds']:.2f}", f"{s['events_per_s']:,}",
                     "-" if s["peak_mb"] is None else f"{s['peak_mb']:.0f}", f"{s['ratio_vs_floor']:.2f}x",
                     s["note"]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    right = {1, 2, 3, 4, 5, 6}

    def fmt(r):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()

    g = result["generated"]
    lines = [f"usage-events ingest benchmark: {g['lines']:,} lines in {g['files']} files "
             f"({g['bytes'] / 1e6:.0f} MB{', gzip' if result['args']['gzip'] else ''}), "
             f"{result['machine']['cpus']} CPUs, load average {result['machine']['load_average'][0]:.1f}-"
             f"{result['machine']['load_average'][1]:.1f} while measuring; 'vs floor' compares per-event time",
             fmt(rows[0]), fmt(tuple("-" * w for w in widths))]
    lines += [fmt(r) for r in rows[1:]]
    lines.append("")
    for v in result["verdicts"]:
        lines.append(f"[{v['verdict']}] {v['target']}: {v['value']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--row-sample", type=int, default=100_000, help="lines for the dlt row path (0: skip)")
    parser.add_argument("--scale", type=int, default=10, help="also run the pipeline on N x events (0: skip)")
    parser.add_argument("--gzip", action="store_true")
    parser.add_argument("--agents", type=int, default=10_000,
                        help="events of the user-agent comparison (0: skip)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="pipeline, floor and dlt arrow runs, alternating (best counts)")
    parser.add_argument("--out", default="bench/out")
    # Internal: the child-process side of one measured step.
    parser.add_argument("--_step", help=argparse.SUPPRESS)
    parser.add_argument("--_landing", help=argparse.SUPPRESS)
    parser.add_argument("--_run-dir", dest="_run_dir", help=argparse.SUPPRESS)
    parser.add_argument("--_result", help=argparse.SUPPRESS)
    parser.add_argument("--_sample", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._step:
        return _run_child_step(args)

    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    landing, gen = ensure_generated(out, args.events, args.gzip)
    scaled_landing = scaled_gen = None
    if args.scale > 0:
        scaled_landing, scaled_gen = ensure_generated(out, args.events * args.scale, args.gzip)

    best = best_of(args.rounds, landing, out)
    pipe, floor, arrow = best["pipeline"], best["floor"], best["arrow"]
    rows = None
    if args.row_sample > 0:
        rows = run_step("rows", landing, out, "rows-sample", sample=min(args.row_sample, gen["stats"]["lines"]))
    scaled = None
    if scaled_landing is not None:
        scaled = (scaled_gen, run_step("pipeline", scaled_landing, out, f"pipeline-x{args.scale}"))

    agents = bench_agents(out, args.agents) if args.agents > 0 else None

    result = build_result(args, gen, pipe, floor, arrow, rows, scaled, agents)
    table = format_table(result)
    result["table"] = table
    (out / "ingest-result.json").write_text(json.dumps(result, indent=2, default=str))
    print()
    print(table)
    print(f"\nwritten {out / 'ingest-result.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
