"""The platform's command line: `python -m cli run` builds everything on the embedded default.

`run` generates sandbox events when the landing location is empty, materialises the whole asset graph
into the Dagster instance under DAGSTER_HOME (so the runs show in the UI afterwards) and prints what it
built. Counts only: no personal data is printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
from pathlib import Path

from pipelines import paths

DEFAULT_DAGSTER_HOME = paths.PROJECT_ROOT / ".dagster_home"
COUNTS = ("lines_read", "events_loaded", "duplicates_dropped", "lines_quarantined")


def ensure_dagster_home() -> Path:
    """DAGSTER_HOME defaults to `.dagster_home/` in the project; its dagster.yaml is the project's dagster_instance.yaml."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(DEFAULT_DAGSTER_HOME)))
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(paths.PROJECT_ROOT / "dagster_instance.yaml", home / "dagster.yaml")
    return home


def open_instance():
    """The Dagster instance under DAGSTER_HOME. Two processes creating its SQLite storage at once would both
    stamp the schema version and leave the storage unreadable ("more than one head"), so opening it is
    serialised by a lock file in DAGSTER_HOME."""
    import fcntl

    from dagster import DagsterInstance

    home = ensure_dagster_home()
    with open(home / ".instance.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return DagsterInstance.get()


def _generate_if_empty(events: int, days: int) -> None:
    import fsspec

    from pipelines.privacy.landed_lifecycle import archive_url
    from pipelines.sandbox.events import generate_events
    from pipelines.usage_events.landing import discover_files

    landing = paths.events_landing_url()
    if not paths.is_sandbox():
        print("GTG_ENV=production: sandbox events are never generated")
        return
    archive, archive_root = fsspec.core.url_to_fs(archive_url(landing))
    if discover_files(landing) or archive.exists(archive_root):
        print(f"landing location {landing} has (or had, now archived) files: not generating sandbox events")
        return
    stats = generate_events(landing, events=events, days=days, end_date=dt.datetime.now(dt.timezone.utc).date(),
                            workspaces_path=paths.workspaces_path())
    print(f"generated {stats.lines} sandbox event lines in {len(stats.files)} files "
          f"({stats.valid_events} events, {stats.duplicate_lines} duplicates, {stats.bad_lines} bad lines)")


def run(events: int, days: int) -> int:
    """Materialise every asset (the events only for days with files not loaded yet); return an exit code.

    Runs left behind by a killed process are marked failed first. Each run holds the warehouse lock from its
    start to its end; while another process holds it, this one says whom it waits for and gives up after
    GTG_WAREHOUSE_WAIT_SECONDS (exit code 3)."""
    instance = open_instance()
    _generate_if_empty(events, days)

    from assets.runs import fail_abandoned_runs

    for dead in fail_abandoned_runs(instance):
        print(f"run {dead.run_id} ({dead.job_name}): its process {dead.pid} is gone (killed or crashed): "
              "marked failed, its pool slots freed")
    ok = load_events(instance)
    # The app database first: it tells which workspaces exist and the region their phone numbers are read in.
    ok = sync_crm_app(instance) and ok
    ok = sync_connections(instance) and ok
    ok = load_contact_uploads(instance) and ok
    # Models first: the retention assets govern them, so retention after them leaves nothing stale; the
    # evidence last, reading every check the runs before it executed.
    for name in ("analytics_job", "privacy_retention_job", "data_subject_requests_job", "policy_evidence_job"):
        ok = _run_job(instance, name) and ok
    print_warehouse_summary()
    return 0 if ok else 1


def load_events(instance) -> bool:
    """One `usage_events_job` run per arrival day that has files the ledger does not hold (what the landing
    sensor requests), oldest first; a day another process loaded meanwhile is skipped."""
    from assets.ingestion import pending_files_by_day
    from definitions import defs

    landing, warehouse = paths.events_landing_url(), defs.resources["warehouse"]
    pending = sorted(pending_files_by_day(landing, warehouse))
    if not pending:
        print("usage_events_job: nothing new landed (every landed file is loaded)")
        return True
    ok = True
    totals = dict.fromkeys(COUNTS, 0)
    print(f"usage_events_job: one run per day with new files, {pending[0]} .. {pending[-1]}")
    for day in pending:
        with _holding_warehouse(f"usage_events_job {day}"):
            if day not in pending_files_by_day(landing, warehouse):
                print(f"  {day}: loaded meanwhile by another run: no run")
                continue
            result = _execute(instance, "usage_events_job", day)
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
    return ok


def _holding_warehouse(what: str):
    """The warehouse lock for this process, named after what it runs (shown to whoever waits for it)."""
    from pipelines.warehouse import warehouse_lock

    return warehouse_lock(paths.warehouse_path(), f"python -m cli: {what}")


def _execute(instance, job_name: str, partition_key: str | None = None):
    """Execute a job in this process under the warehouse lock, as a run of the code location `dagster dev` loads
    (so the UI re-executes it like any other run), tagged with this process's pid (so a later process can tell
    the run was abandoned if this one is killed); warnings and errors only on the console."""
    from assets.runs import process_tags
    from assets.workspace_runs import workspace_repository

    with _holding_warehouse(f"{job_name} {partition_key}" if partition_key else job_name):
        return workspace_repository().execute(
            instance, job_name, partition_key, tags=process_tags(),
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})


SYNC_COUNTS = ("inserted", "updated", "deleted", "http_requests", "retries", "waits")


def sync_connections(instance) -> bool:
    """Sync every syncable connection of every connected provider, one run each (in the sandbox: register
    each provider's seeded connections first)."""
    from definitions import CONNECTED_PROVIDERS, defs
    from resources.keyring import KeyringResource

    connections = defs.resources["connections"]
    registry = connections.registry()
    if connections.sandbox:
        with KeyringResource().open() as cipher:
            for seed in dict.fromkeys(p.seed_sandbox for p in CONNECTED_PROVIDERS if p.seed_sandbox):
                seed(registry, cipher)
    ok = True
    for connected in CONNECTED_PROVIDERS:
        ids = [c.connection_id for c in registry.list(connected.provider)]
        known = set(instance.get_dynamic_partitions(connected.partitions.name))
        instance.add_dynamic_partitions(connected.partitions.name, [c for c in ids if c not in known])
        print(f"{connected.job.name}: one run per {connected.provider} connection ({len(ids)})")
        for connection_id in ids:
            result = _execute(instance, connected.job.name, connection_id)
            ok = ok and result.success
            checks = result.get_asset_check_evaluations()
            print(f"  {connection_id}: run {result.run_id} {'success' if result.success else 'FAILED'}; "
                  f"checks passed {sum(c.passed for c in checks)}/{len(checks)}")
            for event in result.get_asset_materialization_events():
                meta = event.materialization.metadata
                counts = ", ".join(f"{k} {meta[k].value}" for k in SYNC_COUNTS if k in meta)
                print(f"    {event.asset_key.path[-1]}: {counts}")
    return ok


APP_COUNTS = ("rows_read", "rows_deleted", "rows_suppressed", "erasure_requests_filed")


def sync_crm_app(instance) -> bool:
    """Sync the CRM app database. In the sandbox the generated app database is created the first time and
    changed at every later run (new, edited and deleted contacts, a plan change, a closed account)."""
    from pipelines.crm_app import sandbox as app_sandbox
    from definitions import defs

    app = defs.resources["crm_app"]
    if app.sandbox and not app.database_url:
        existed = Path(app.sandbox_path).exists()
        url = app.url()
        if existed:
            changes = app_sandbox.advance(url)
            print(f"sandbox app database changed: {', '.join(f'{k} {v}' for k, v in changes.items())}")
        else:
            print(f"sandbox app database generated: {len(app_sandbox.WORKSPACES)} workspaces")
    return _run_job(instance, "crm_app_sync_job", APP_COUNTS)


UPLOAD_COUNTS = ("files_loaded", "files_rejected", "files_waiting", "rows", "contacts_loaded", "duplicates_dropped",
                 "rows_quarantined", "rows_suppressed")


def load_contact_uploads(instance) -> bool:
    """Load the uploaded contact lists. The sandbox lands four sample uploads the first time (a Google and an
    Outlook export, a semicolon-separated list, an Excel workbook)."""
    from pipelines.contact_uploads.sandbox import write_sandbox_uploads
    from definitions import defs

    landing = Path(defs.resources["uploads"].landing)
    if paths.is_sandbox() and not landing.exists():
        written = write_sandbox_uploads(landing)
        print(f"sandbox contact lists uploaded: {len(written)} files")
    return _run_job(instance, "contact_uploads_job", UPLOAD_COUNTS)


def disconnect_connection(connection_id: str, requested_by: str) -> int:
    """Revoke a connection (any provider) and file the erasure of its data (the request sensor processes it)."""
    from pipelines.connections.disconnect import disconnect
    from resources.privacy import PrivacyResource

    from definitions import defs

    try:
        request_id = disconnect(defs.resources["connections"].registry(), PrivacyResource().inbox(), connection_id,
                                requested_by=requested_by)
    except KeyError:
        print(f"no connection {connection_id}", file=sys.stderr)
        return 2
    print(f"{connection_id}: revoked; erasure of its data filed as {request_id}")
    return 0


def print_connections() -> int:
    """Every registered connection: id, workspace, provider, status, last sync (no secrets)."""
    from definitions import defs
    from pipelines.connections.registry import STATUSES

    rows = defs.resources["connections"].registry().list(statuses=STATUSES)
    print(f"{'connection':28} {'workspace':10} {'provider':12} {'status':12} {'last synced':20} detail")
    for c in rows:
        print(f"{c.connection_id:28} {c.workspace_id:10} {c.provider:12} {c.status:12} "
              f"{(c.last_synced_at or '')[:19]:20} {c.status_detail or ''}")
    return 0


def _run_job(instance, name: str, counts: tuple[str, ...] | None = None) -> bool:
    """Run one unpartitioned job and print the checks and each materialisation's counts (only `counts`, in that
    order, when given: an asset reporting none of them is not printed)."""
    from dagster import MarkdownMetadataValue, PathMetadataValue

    result = _execute(instance, name)
    checks = result.get_asset_check_evaluations()
    print(f"{name}: run {result.run_id} {'success' if result.success else 'FAILED'}; "
          f"checks passed {sum(c.passed for c in checks)}/{len(checks)}")
    for event in result.get_asset_materialization_events():
        meta = event.materialization.metadata
        shown = {k: _relative(v.value) if isinstance(v, PathMetadataValue) else v.value for k, v in meta.items()
                 if isinstance(v.value, (int, float, str)) and v.value != "" and not isinstance(v, MarkdownMetadataValue)
                 and not k.startswith("dagster/")}  # Dagster's own entries repeat what the asset says
        if counts is not None:
            shown = {k: shown[k] for k in counts if k in shown}
            if not shown:
                continue
        print(f"  {event.asset_key.to_user_string()}: {', '.join(f'{k} {v}' for k, v in shown.items())}")
    return result.success


def _relative(path: str | Path) -> str:
    """A path as the user can type it from here: relative to the working folder when it lies inside it."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(Path.cwd())) if resolved.is_relative_to(Path.cwd()) else str(path)


def print_warehouse_summary() -> None:
    """Row counts per table of the warehouse, read-only (dlt's own tables and its emptied staging copies left out)."""
    import duckdb

    from pipelines.warehouse import warehouse_lock

    with warehouse_lock(paths.warehouse_path(), "python -m cli: warehouse summary", shared=True), \
            duckdb.connect(str(paths.warehouse_path()), read_only=True) as con:
        tables = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_name NOT LIKE '\\_dlt%' ESCAPE '\\' AND table_schema NOT LIKE '%\\_staging' ESCAPE '\\' "
            "ORDER BY ALL"
        ).fetchall()
        print(f"warehouse {_relative(paths.warehouse_path())}:")
        for schema, table in tables:
            count = con.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchone()[0]
            print(f"  {schema}.{table}: {count} rows")


def submit_request(args: argparse.Namespace) -> int:
    """File a data-subject request in the inbox; the sensor (or `privacy process`) handles it."""
    from pipelines.privacy.keyring import Keyring, KeyringError, platform_master_key
    from pipelines.privacy.requests import IDENTITY_KINDS, Inbox, Request, RequestError, validate

    kind = next(k for k in IDENTITY_KINDS if getattr(args, k) is not None)
    purposes = {**{p: True for p in args.opt_in}, **{p: False for p in args.opt_out}} or None
    request = Request(args.type, args.workspace, kind, getattr(args, kind), field=args.field,
                      new_value=args.new_value, purposes=purposes, source="cli", requested_by=args.requested_by)
    try:
        validate(request)
        unknown = RequestError("unknown workspace: no data is held for this workspace id")
        if not paths.keyring_path().exists():
            raise unknown
        with Keyring.open(paths.keyring_path(), platform_master_key()) as cipher:
            if not cipher.has_workspace(args.workspace):
                raise unknown
        request_id = Inbox(paths.request_inbox_path()).submit(request)
    except (RequestError, KeyringError) as exc:
        print(f"request refused: {exc}", file=sys.stderr)
        return 2
    stored = Inbox(paths.request_inbox_path()).get(request_id)
    print(f"{request_id}: {args.type} request received, deadline {stored['deadline'][:10]}")
    return 0


def provider_deletion(args: argparse.Namespace) -> int:
    """File a provider-initiated erasure (Meta's data-deletion callback, a Google revocation) and print the
    answer the provider expects (Meta: a status URL and a confirmation code)."""
    from pipelines.privacy.provider_requests import google_revocation_request, meta_callback_response, meta_deletion_request
    from pipelines.privacy.requests import Inbox, RequestError

    try:
        if args.meta_signed_request:
            secret = os.environ.get("GTG_META_APP_SECRET")
            if not secret:
                raise RequestError("GTG_META_APP_SECRET is not set: the signed request cannot be verified")
            request = meta_deletion_request(args.meta_signed_request, secret, args.workspace)
        else:
            request = google_revocation_request(args.workspace, args.google_user_id)
        request_id = Inbox(paths.request_inbox_path()).submit_once(request)
    except RequestError as exc:
        print(f"request refused: {exc}", file=sys.stderr)
        return 2
    if args.meta_signed_request and paths.keyring_path().exists():  # the ad accounts that user connected
        from pipelines.connections.registry import ConnectionRegistry
        from pipelines.facebook.owner import erase_meta_user
        from pipelines.privacy.keyring import Keyring, platform_master_key

        with Keyring.open(paths.keyring_path(), platform_master_key()) as cipher:
            erase_meta_user(ConnectionRegistry(paths.connections_path()), Inbox(paths.request_inbox_path()), cipher,
                            request.identity_value)
    if request.confirmation_code:
        print(json.dumps(meta_callback_response(args.status_url, request_id, request.confirmation_code)))
    else:
        print(f"{request_id}: erasure request received")
    return 0


def offboard(args: argparse.Namespace) -> int:
    """Erase a whole workspace (a customer who closed their account); asks for the id twice."""
    from pipelines.privacy.offboard import check_workspace, offboard_workspace

    try:
        check_workspace(args.workspace)
    except ValueError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    if args.confirm != args.workspace:
        print("refused: offboarding destroys the workspace's data for good; repeat its id with --confirm",
              file=sys.stderr)
        return 2
    ensure_dagster_home()
    from assets.analytics import snapshot_path
    from definitions import defs

    warehouse, privacy = defs.resources["warehouse"], defs.resources["privacy"]
    with defs.resources["keyring"].open() as cipher:
        report = offboard_workspace(args.workspace, warehouse_path=Path(warehouse.path), cipher=cipher,
                                    inbox=privacy.inbox(), audit=privacy.audit(cipher), landing_urls=privacy.landing_urls,
                                    exports_dir=Path(privacy.exports_dir),
                                    registry=defs.resources["connections"].registry(), snapshot=snapshot_path(warehouse),
                                    requested_by=args.requested_by)
    print(f"{args.workspace}: offboarded; {report.keys_destroyed} keys destroyed, "
          f"{sum(report.rows_by_table.values())} rows deleted from {len(report.rows_by_table)} tables, "
          f"{report.landing_lines_removed} landed lines removed, {report.connections_removed} connections, "
          f"{report.exports_removed} exports and {report.requests_closed} pending requests removed")
    return 0


def print_requests() -> int:
    """Every request with its status and deadline (ids and codes only)."""
    from pipelines.privacy.requests import Inbox

    rows = Inbox(paths.request_inbox_path()).all()
    print(f"{'request':22} {'type':10} {'source':18} {'status':9} {'received':16} {'deadline':10} detail")
    for r in rows:
        print(f"{r['request_id']:22} {r['request_type']:10} {r['source']:18} {r['status']:9} "
              f"{r['received_at'][:16]:16} {r['deadline'][:10]:10} {r['status_detail'] or ''}")
    return 0


def rotate_master_key(requested_by: str) -> int:
    """Re-wrap every workspace key under a new master key (no data re-encrypted); one audit entry."""
    from pipelines.privacy.audit import AuditLog
    from pipelines.privacy.keyring import Keyring, KeyringError, rotate_platform_master_key

    try:
        count, new_key = rotate_platform_master_key(paths.keyring_path())
    except KeyringError as exc:
        print(f"rotation refused: {exc}", file=sys.stderr)
        return 2
    with Keyring.open(paths.keyring_path(), new_key) as cipher:
        AuditLog.of(paths.audit_log_path(), cipher).append(
            actor=f"operator:{requested_by}", action="keys.rotate_master", counts={"workspace_keys_rewrapped": count})
    print(f"master key rotated: {count} workspace keys re-wrapped, no data re-encrypted")
    return 0


def rotate_workspace_key(workspace_id: str, requested_by: str) -> int:
    """Give one workspace a new key: subject keys re-wrapped, its subject-less values re-encrypted in the
    warehouse and the connection registry, the old key shredded; one audit entry. Needs the warehouse's
    writer lock (run it while no job writes)."""
    import duckdb

    from pipelines.connections.registry import ConnectionRegistry
    from pipelines.privacy.audit import AuditLog
    from pipelines.privacy.categories import stored_declarations
    from pipelines.privacy.keyring import Keyring, KeyringError, platform_master_key
    from pipelines.privacy.keys import rotate_workspace_key as rotate

    stores = {}
    if paths.connections_path().exists():
        stores["connections"] = ConnectionRegistry(paths.connections_path()).reseal
    try:
        with Keyring.open(paths.keyring_path(), platform_master_key()) as cipher, \
                duckdb.connect(str(paths.warehouse_path()) if paths.warehouse_path().exists() else ":memory:") as con:
            report = rotate(con, stored_declarations(con), cipher, workspace_id, stores)
            AuditLog.of(paths.audit_log_path(), cipher).append(
                actor=f"operator:{requested_by}", action="keys.rotate_workspace", workspace_id=workspace_id,
                tables=report.values_reencrypted,
                counts={"subject_keys_rewrapped": report.subject_keys_rewrapped, "resumed": int(report.resumed)})
    except KeyringError as exc:
        print(f"rotation refused: {exc}", file=sys.stderr)
        return 2
    except duckdb.IOException:
        print("rotation refused: another process is writing the warehouse; retry when no job runs", file=sys.stderr)
        return 2
    print(f"{workspace_id}: key rotated; {report.subject_keys_rewrapped} subject keys re-wrapped, "
          f"{sum(report.values_reencrypted.values())} values re-encrypted")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cli", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="build the whole asset graph on the embedded default")
    run_parser.add_argument("--events", type=int, default=int(os.environ.get("GTG_SANDBOX_EVENTS", "100000")),
                            help="sandbox event lines to generate when the landing location is empty")
    run_parser.add_argument("--days", type=int, default=7, help="days of sandbox events, ending today")
    sub.add_parser("retention", help="run the retention job now (delete / anonymise expired records)")
    privacy = sub.add_parser("privacy", help="data-subject requests").add_subparsers(dest="action", required=True)
    submit = privacy.add_parser("submit", help="file an access, correction, erasure or consent request")
    submit.add_argument("--type", required=True, help="access | correction | erasure | consent")
    submit.add_argument("--workspace", required=True)
    who = submit.add_mutually_exclusive_group(required=True)
    from pipelines.privacy.requests import IDENTITY_KINDS, PURPOSES

    for kind, note in IDENTITY_KINDS.items():
        who.add_argument(f"--{kind.replace('_', '-')}", dest=kind, help=f"identify the person by {kind} ({note})")
    submit.add_argument("--field", help="correction: the data category to correct, e.g. user.device.ip_address")
    submit.add_argument("--new-value", help="correction: the corrected value")
    submit.add_argument("--opt-out", nargs="*", default=[], choices=PURPOSES, help="consent: purposes refused")
    submit.add_argument("--opt-in", nargs="*", default=[], choices=PURPOSES, help="consent: purposes allowed")
    submit.add_argument("--requested-by", default=os.environ.get("USER", "cli"), help="who files it (for the audit)")
    provider = privacy.add_parser("provider-deletion", help="a provider asked to delete a person's data")
    provider.add_argument("--workspace", required=True, help="the workspace whose connection the person used")
    source = provider.add_mutually_exclusive_group(required=True)
    source.add_argument("--meta-signed-request", help="the signed_request of Meta's data-deletion callback "
                        "(verified with GTG_META_APP_SECRET)")
    source.add_argument("--google-user-id", help="the Google account that revoked GTG's access")
    provider.add_argument("--status-url", default="https://app.gtgcrm.com/privacy/deletion-status",
                          help="where Meta's users follow their deletion (the request id is appended)")
    privacy.add_parser("status", help="list requests with status and deadline")
    privacy.add_parser("process", help="process pending requests now (what the sensor starts)")
    off = privacy.add_parser("offboard", help="erase a whole workspace: rows, landed lines, connections, keys")
    off.add_argument("workspace")
    off.add_argument("--confirm", required=True, help="the workspace id again")
    off.add_argument("--requested-by", default=os.environ.get("USER", "cli"), help="who asks (for the audit)")
    connections = sub.add_parser("connections", help="provider connections (mail, Meta, Google Ads, LinkedIn)").add_subparsers(dest="action", required=True)
    connections.add_parser("list", help="list connections with status and last sync")
    gone = connections.add_parser("disconnect", help="revoke a connection and erase its synced data")
    gone.add_argument("connection_id")
    gone.add_argument("--requested-by", default=os.environ.get("USER", "cli"))
    keys = sub.add_parser("keys", help="key rotation").add_subparsers(dest="action", required=True)
    master = keys.add_parser("rotate-master", help="re-wrap every workspace key under a new master key "
                             "(GTG_NEW_MASTER_KEY, or generated into the key file)")
    workspace = keys.add_parser("rotate-workspace", help="give a workspace a new key and shred the old one")
    workspace.add_argument("workspace_id")
    for rotation in (master, workspace):
        rotation.add_argument("--requested-by", default=os.environ.get("USER", "cli"), help="who rotates (for the audit)")
    args = parser.parse_args(argv)
    try:
        paths.environment()
    except paths.PlatformEnvironmentError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    paths.private_dir(paths.data_dir())  # a data folder made by an older version may be world-readable
    if args.command == "keys":
        if args.action == "rotate-master":
            return rotate_master_key(args.requested_by)
        return rotate_workspace_key(args.workspace_id, args.requested_by)
    if args.command == "run":
        return run(args.events, args.days)
    if args.command == "connections":
        ensure_dagster_home()
        if args.action == "list":
            return print_connections()
        return disconnect_connection(args.connection_id, args.requested_by)
    if args.command == "privacy" and args.action != "process":
        handlers = {"submit": submit_request, "provider-deletion": provider_deletion, "status": lambda _: print_requests(),
                    "offboard": offboard}
        return handlers[args.action](args)
    if args.command in ("retention", "privacy"):
        job = "privacy_retention_job" if args.command == "retention" else "data_subject_requests_job"
        return 0 if _run_job(open_instance(), job) else 1
    return 2


if __name__ == "__main__":
    from pipelines.warehouse import WarehouseBusy

    try:
        sys.exit(main())
    except WarehouseBusy as busy:  # another process kept the warehouse past GTG_WAREHOUSE_WAIT_SECONDS
        print(f"stopped: {busy}", file=sys.stderr)
        sys.exit(3)
