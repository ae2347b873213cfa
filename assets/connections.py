"""What every connected provider's assets share: the dlt-backed asset that syncs one connection, a dynamic
partition per connection, a sync job, an hourly schedule, one sensor for all providers, and the status a failed
sync leaves on its connection.

A provider's assets module builds its `ConnectedProvider` with `connected_provider`, handing it how to open one
connection's sync; definitions.py hands the list of them to `connections_sensor`, so a new provider joins the
sensor by being listed.
"""

from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSelection,
    AssetsDefinition,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    DynamicPartitionsDefinition,
    Failure,
    MaterializeResult,
    RunRequest,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SensorResult,
    define_asset_job,
    multi_asset,
    schedule,
    sensor,
)
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition
from dlt.extract.source import DltSource

from assets.translator import load, warehouse_specs
from pipelines.connections.outcome import reauthorization_required, recorded_outcome
from pipelines.connections.registry import SYNCABLE, Connection, ConnectionRegistry
from pipelines.warehouse import finish_pending
from resources.connections import ConnectionsResource
from resources.keyring import KeyringResource
from resources.warehouse import WAREHOUSE_POOL, WarehouseResource

SeedSandbox = Callable[[ConnectionRegistry, Any], None]
PARTITIONED = (*SYNCABLE, "needs_reauth")  # connections that have a partition


@dataclass
class ConnectionSync:
    """One connection's sync as its provider opens it: the dlt source to load, each loaded table's own figures
    (rows inserted / updated, requests, retries...) read once it is loaded, and why the sync stopped short when
    it did on purpose (set by the provider after loading; the run's log says it). A sync too big for one load
    hands the sources of its further loads in `more`: the run loads each before taking the next (taking it
    lets the provider save the cursors the last load reached), and `figures` then covers every load."""

    source: DltSource
    figures: Callable[[str], Mapping[str, Any]]
    stopped: str | None = None
    more: Iterable[DltSource] = ()


# open_sync(provider_resource, registry, cipher, connection, warehouse): a context manager yielding the
# connection's `ConnectionSync`; the shared asset body loads its source inside the block, and the provider saves
# the cursors (and whatever else the loaded sync settles) when the block ends without an error.
OpenSync = Callable[[Any, ConnectionRegistry, Any, Connection, WarehouseResource],
                    AbstractContextManager[ConnectionSync]]


@dataclass(frozen=True)
class ConnectedProvider:
    """One provider as definitions.py, the sensor and the CLI see it: its assets, the job that syncs one
    connection and the partitions. `seed_sandbox(registry, cipher)` registers the sandbox's seeded connections
    (idempotently; several providers may share one seeder)."""

    provider: str
    assets: AssetsDefinition
    job: UnresolvedAssetJobDefinition
    partitions: DynamicPartitionsDefinition
    seed_sandbox: SeedSandbox | None = None


def connected_provider(provider: str, *, spec_source: DltSource, source_name: str, dataset: str, resource_key: str,
                       open_sync: OpenSync, description: str, job_description: str,
                       seed_sandbox: SeedSandbox | None = None,
                       load_memory_limit: str | None = None) -> ConnectedProvider:
    """`provider`'s dlt-backed assets (one per resource of its source, keyed `<dataset>/<table>`), a partition per
    connection id, and the job syncing one. A run syncs the partition's connection: refused at once when it
    cannot be synced (`syncable`), its failure recorded on the connection (`sync_guard`), packages an interrupted
    run left finished first, then `open_sync` (handed the resource at `resource_key`) opens the sync, `load` runs
    it, and the provider saves the cursors once loaded. `spec_source` is the source built without a connection,
    which only names the tables; `load_memory_limit` caps DuckDB while its loads run (default the shared cap)."""
    partitions = DynamicPartitionsDefinition(name=f"{provider}_connections")

    @multi_asset(name=provider, specs=warehouse_specs(spec_source, source_name, dataset), can_subset=True,
                 partitions_def=partitions, pool=WAREHOUSE_POOL, description=description,
                 required_resource_keys={"dlt_runner", "warehouse", "keyring", "connections", resource_key})
    def sync_assets(context: AssetExecutionContext):
        resources = context.resources
        warehouse: WarehouseResource = resources.warehouse
        registry = resources.connections.registry()
        connection = syncable(registry, context.partition_key)
        pipeline = warehouse.pipeline(source_name, dataset, load_memory_limit)
        with resources.keyring.open() as cipher, sync_guard(registry, connection):
            recovered = finish_pending(pipeline)
            with open_sync(getattr(resources, resource_key), registry, cipher, connection, warehouse) as sync:
                loads = [list(load(context, resources.dlt_runner, sync.source, pipeline, warehouse))]
                for source in sync.more:
                    context.log.info(f"connection {connection.connection_id}: load {len(loads)} done, "
                                     f"loading piece {len(loads) + 1}")
                    loads.append(list(load(context, resources.dlt_runner, source, pipeline, warehouse)))
        if sync.stopped:
            context.log.warning(f"connection {connection.connection_id}: {sync.stopped}")
        for key, metadata in summed_loads(loads).items():
            yield MaterializeResult(asset_key=key, metadata={
                **metadata, **sync.figures(key.path[-1]), "loads": len(loads), "recovered_loads": len(recovered)})

    job = define_asset_job(f"{provider}_sync_job", selection=AssetSelection.assets(sync_assets),
                           partitions_def=partitions, description=job_description)
    return ConnectedProvider(provider, sync_assets, job, partitions, seed_sandbox)


SUMMED = ("rows_loaded", "dagster/partition_row_count")  # per-load figures a run of several loads adds up
FIRST = ("first_run", "started_at")  # what the run's first load says of itself


def summed_loads(loads: Sequence[Sequence[MaterializeResult]]) -> dict[AssetKey, dict[str, Any]]:
    """Each asset's dlt metadata over the run's loads (in order): rows added up, jobs listed together, the
    first load's start; the rest (schema, table name, finish) as the last load that carried the asset says."""
    out: dict[AssetKey, dict[str, Any]] = {}
    for results in loads:
        for result in results:
            metadata = dict(result.metadata or {})
            earlier = out.get(result.asset_key)
            if earlier is not None:
                for key in SUMMED:
                    if key in earlier or key in metadata:
                        metadata[key] = _number(earlier.get(key)) + _number(metadata.get(key))
                for key in FIRST:
                    if key in earlier:
                        metadata[key] = earlier[key]
                metadata["jobs"] = [*earlier.get("jobs", []), *metadata.get("jobs", [])]
            out[result.asset_key] = metadata
    return out


def _number(value: Any) -> int:
    """A count as dlt's metadata holds it (an int, or Dagster's int metadata value), 0 when absent."""
    return int(getattr(value, "value", value) or 0)


def hourly_schedule(connected: ConnectedProvider, cron_schedule: str = "0 * * * *"):
    """Every hour, one run per syncable (active or erroring) connection that has its partition."""

    @schedule(name=f"{connected.provider}_hourly_sync", job=connected.job, cron_schedule=cron_schedule,
              execution_timezone="UTC", default_status=DefaultScheduleStatus.RUNNING,
              description=f"Every hour, sync every active or erroring {connected.provider} connection "
                          "(a connection that needs re-authorisation waits for the user).")
    def hourly(context: ScheduleEvaluationContext, connections: ConnectionsResource):
        known = set(context.instance.get_dynamic_partitions(connected.partitions.name))
        return [RunRequest(partition_key=c.connection_id, run_key=f"{c.connection_id}:{context.scheduled_execution_time}")
                for c in connections.registry().list(connected.provider) if c.connection_id in known]

    return hourly


def connections_sensor(providers: Sequence[ConnectedProvider]):
    """The sensor keeping every provider's partitions in step with the registry: a new connection gets its
    partition and a first sync at once; a revoked one loses its partition. A connection that needs
    re-authorisation keeps it (its failed run says why, in the UI) but no schedule runs it until the user
    reconnects; the next hourly schedule then syncs it."""
    jobs = list({p.job.name: p.job for p in providers}.values())

    @sensor(name="connections_sensor", jobs=jobs, minimum_interval_seconds=60,
            default_status=DefaultSensorStatus.RUNNING,
            description="Keeps each provider's connection partitions in step with the registry; a new "
                        "connection syncs at once.")
    def _sensor(context: SensorEvaluationContext, connections: ConnectionsResource, keyring: KeyringResource):
        registry = connections.registry()
        if connections.sandbox:
            seeders = list(dict.fromkeys(p.seed_sandbox for p in providers if p.seed_sandbox))
            with keyring.open() as cipher:
                for seed in seeders:
                    seed(registry, cipher)
        partition_requests, runs = [], []
        for connected in providers:
            wanted = {c.connection_id for c in registry.list(connected.provider, statuses=PARTITIONED)}
            have = set(context.instance.get_dynamic_partitions(connected.partitions.name))
            added, removed = sorted(wanted - have), sorted(have - wanted)
            if added:
                partition_requests.append(connected.partitions.build_add_request(added))
                runs += [RunRequest(partition_key=k, job_name=connected.job.name, run_key=f"first-sync:{k}")
                         for k in added]
            if removed:
                partition_requests.append(connected.partitions.build_delete_request(removed))
        return SensorResult(run_requests=runs, dynamic_partitions_requests=partition_requests)

    return _sensor


def syncable(registry: ConnectionRegistry, connection_id: str) -> Connection:
    """The partition's connection, refused (without a retry) when it cannot be synced."""
    connection = registry.get(connection_id)
    if connection.status in ("revoked", "needs_reauth"):
        raise Failure(f"connection {connection_id} is {connection.status}: nothing to sync until the user "
                      f"{'reconnects the account' if connection.status == 'needs_reauth' else 'connects it again'}",
                      allow_retries=False)
    return connection


@contextmanager
def sync_guard(registry: ConnectionRegistry, connection: Connection) -> Iterator[None]:
    """An asset's sync of one connection: a failure updates the connection's status (`recorded_outcome`);
    a refused token becomes a Dagster failure that says the connection needs re-authorisation and is not
    retried."""
    try:
        with recorded_outcome(registry, connection):
            yield
    except Exception as exc:
        refused = reauthorization_required(exc)
        if refused is None:
            raise
        raise Failure(f"connection {connection.connection_id} needs re-authorisation: {refused}",
                      allow_retries=False) from None
