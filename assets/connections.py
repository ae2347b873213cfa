"""What every connected provider's assets share: a dynamic partition per connection, a sync job, an hourly
schedule, one sensor for all providers, and the status a failed sync leaves on its connection.

A provider's assets module builds its partitioned assets and exports a `ConnectedProvider`; definitions.py
hands the list of them to `connections_sensor`, so a new provider joins the sensor by being listed.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from dagster import (
    AssetSelection,
    AssetsDefinition,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    DynamicPartitionsDefinition,
    Failure,
    RunRequest,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SensorResult,
    define_asset_job,
    schedule,
    sensor,
)
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from pipelines.connections.outcome import reauthorization_required, recorded_outcome
from pipelines.connections.registry import SYNCABLE, Connection, ConnectionRegistry
from resources.connections import ConnectionsResource
from resources.keyring import KeyringResource

SeedSandbox = Callable[[ConnectionRegistry, Any], None]
PARTITIONED = (*SYNCABLE, "needs_reauth")  # connections that have a partition


@dataclass(frozen=True)
class ConnectedProvider:
    """One provider as the sensor and the CLI see it. `seed_sandbox(registry, cipher)` registers the sandbox's
    seeded connections (idempotently; several providers may share one seeder)."""

    provider: str
    job: UnresolvedAssetJobDefinition
    partitions: DynamicPartitionsDefinition
    seed_sandbox: SeedSandbox | None = None


def connection_partitions(provider: str) -> DynamicPartitionsDefinition:
    """One partition per connection id of `provider`."""
    return DynamicPartitionsDefinition(name=f"{provider}_connections")


def connection_job(provider: str, assets: AssetsDefinition, partitions: DynamicPartitionsDefinition,
                   description: str) -> UnresolvedAssetJobDefinition:
    return define_asset_job(f"{provider}_sync_job", selection=AssetSelection.assets(assets),
                            partitions_def=partitions, description=description)


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
