"""Gmail and Outlook: one dlt-backed asset per provider stream, partitioned by connection, with checks.

A partition is one connected account (the registry's connection id); the connections sensor keeps the two
dynamic partition sets in step with the registry (new connections are added and synced at once, revoked ones
are removed) and the hourly schedules sync every active connection (`assets.connections`). Each materialisation carries its stream's
rows inserted / updated / deleted, whether it was a full resync (first sync or expired cursor), and the
connection's HTTP requests and retries. Cursors are saved to the registry only after dlt has loaded.
"""

from contextlib import contextmanager
from typing import Callable, Iterator

from assets.connections import ConnectedProvider, ConnectionSync, connected_provider, hourly_schedule
from assets.stream_checks import stream_checks
from pipelines.gmail import gmail_source
from pipelines.gmail import settings as gmail
from pipelines.mail_common.sandbox import sandbox_accounts, seed_connections
from pipelines.mail_common.session import commit, open_session
from pipelines.outlook import outlook_source
from pipelines.outlook import settings as outlook
from resources.mail import MailResource
from resources.warehouse import WarehouseResource


def _mail_sync(source: Callable):
    """How one mailbox's sync opens: a session on its cursors (everything the first time), committed once loaded."""

    @contextmanager
    def open_sync(mail: MailResource, registry, cipher, connection,
                  warehouse: WarehouseResource) -> Iterator[ConnectionSync]:
        with mail.endpoints() as endpoints, open_session(registry, cipher, connection, endpoints, mail.oauth(),
                                                         warehouse_path=warehouse.path,
                                                         work_dir=warehouse.work_dir) as session:
            yield ConnectionSync(source(session), session.report.as_metadata)
            commit(registry, session)

    return open_sync


def _seed_mail(registry, cipher) -> None:
    """The sandbox's seeded Gmail and Outlook connections (one seeder for both providers)."""
    seed_connections(registry, cipher, sandbox_accounts())


def _provider(provider: str, title: str, source: Callable, settings) -> ConnectedProvider:
    return connected_provider(provider, spec_source=source(None), source_name=settings.SOURCE_NAME,
                              dataset=settings.DATASET_NAME, resource_key="mail", open_sync=_mail_sync(source),
                              description="Sync one connection: what changed since its cursors (everything the "
                                          "first time).",
                              job_description=f"Sync one {title} connection.", seed_sandbox=_seed_mail)


GMAIL = _provider("gmail", "Gmail", gmail_source, gmail)
OUTLOOK = _provider("outlook", "Outlook", outlook_source, outlook)
MAIL_PROVIDERS = [GMAIL, OUTLOOK]
GMAIL_CONNECTIONS, OUTLOOK_CONNECTIONS = GMAIL.partitions, OUTLOOK.partitions

STREAMS = (gmail.MESSAGES, gmail.CONTACTS, outlook.MESSAGES, outlook.CONTACTS)
MAIL_CHECKS = [check for stream in STREAMS for check in stream_checks(stream)]
MAIL_ASSETS = [GMAIL.assets, OUTLOOK.assets]
MAIL_JOBS = [GMAIL.job, OUTLOOK.job]
MAIL_SCHEDULES = [hourly_schedule(connected) for connected in MAIL_PROVIDERS]
