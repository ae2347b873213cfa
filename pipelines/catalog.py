"""The catalogue of what the sources load: every table with its column declaration, and every landing zone
holding raw copies of personal data.

The privacy engine is generic: it governs whatever is listed here (retention rules are validated against
it, erasure and access walk it). A new source joins by adding its settings below — no privacy code of its
own. Sources never import each other; only this module knows them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from dlt.common.schema.typing import TTableSchemaColumns

from pipelines import paths
from pipelines.ad_reporting import PlatformReport
from pipelines.contact_uploads import settings as contact_uploads
from pipelines.crm_app import settings as crm_app
from pipelines.facebook import settings as facebook
from pipelines.gmail import settings as gmail
from pipelines.google_ads import settings as google_ads
from pipelines.linkedin_ads import settings as linkedin_ads
from pipelines.outlook import settings as outlook
from pipelines.usage_events import settings as usage_events
from pipelines.workspaces import WORKSPACE_ID_PATTERN


@dataclass(frozen=True)
class LandingZone:
    """Raw NDJSON files a source reads from: `url()` is resolved at use (environment variables may move it).
    `ledger` is the table recording each loaded file's URL and arrival day (`file_url`, `received_date`)."""

    name: str
    url: Callable[[], str]
    glob: str
    workspace_field: str
    subject_fields: tuple[str, ...]
    subject_kinds: tuple[str, ...]  # the identifier kind (data category) of each subject field, for blind indexes
    ledger: str
    workspace_pattern: str = WORKSPACE_ID_PATTERN
    max_line_bytes: int | None = None  # the source's reader quarantines longer lines (None: no limit)


# The mail streams: one table (and one asset) each, partitioned by connection; a stream's child table (the
# messages' recipients) is loaded by the same resource, so it belongs to the stream's asset.
_MAIL_STREAMS = (gmail.MESSAGES, gmail.CONTACTS, outlook.MESSAGES, outlook.CONTACTS)
# The provider streams loaded per connection the same way (the mail ones and Meta's); a child table (recipients,
# insight actions) belongs to its stream's asset.
_CONNECTION_STREAMS = (*_MAIL_STREAMS, *facebook.STREAMS)
_CHILDREN = tuple((s, s.child) for s in _CONNECTION_STREAMS if s.child)

DECLARED_TABLES: dict[str, TTableSchemaColumns] = {
    **{f"{usage_events.DATASET_NAME}.{table}": columns for table, columns in usage_events.TABLES.items()},
    **{f"{s.dataset}.{s.table}": s.columns for s in _CONNECTION_STREAMS},
    **{f"{s.dataset}.{c.table}": c.columns for s, c in _CHILDREN},
    **{f"{crm_app.DATASET_NAME}.{table}": columns for table, columns in crm_app.TABLES.items()},
    **{f"{contact_uploads.DATASET_NAME}.{table}": columns for table, columns in contact_uploads.TABLES.items()},
    **{f"{google_ads.DATASET_NAME}.{table}": columns for table, columns in google_ads.TABLES.items()},
    **{f"{linkedin_ads.DATASET_NAME}.{table}": columns for table, columns in linkedin_ads.TABLES.items()},
}

# The asset (key path) that materialises each table: the events resource loads all three of its tables.
ASSET_OF_TABLE: dict[str, tuple[str, ...]] = {
    **{f"{usage_events.DATASET_NAME}.{table}": (usage_events.DATASET_NAME, usage_events.EVENTS_TABLE)
       for table in usage_events.TABLES},
    **{f"{s.dataset}.{s.table}": (s.dataset, s.table) for s in _CONNECTION_STREAMS},
    **{f"{s.dataset}.{c.table}": (s.dataset, s.table) for s, c in _CHILDREN},
    **{f"{crm_app.DATASET_NAME}.{table}": (crm_app.DATASET_NAME, table) for table in crm_app.TABLES},
    **{f"{contact_uploads.DATASET_NAME}.{table}": (contact_uploads.DATASET_NAME, table)
       for table in contact_uploads.TABLES},
    **{f"{google_ads.DATASET_NAME}.{table}": (google_ads.DATASET_NAME, table) for table in google_ads.TABLES},
    **{f"{linkedin_ads.DATASET_NAME}.{table}": (linkedin_ads.DATASET_NAME, table) for table in linkedin_ads.TABLES},
}

LANDING_ZONES: tuple[LandingZone, ...] = (
    LandingZone(
        name="usage_events",
        url=paths.events_landing_url,
        glob=usage_events.LANDING_GLOB,
        workspace_field=usage_events.LANDING_WORKSPACE_FIELD,
        subject_fields=usage_events.LANDING_SUBJECT_FIELDS,
        subject_kinds=tuple(usage_events.EVENT_COLUMNS[f]["x-data-category"] for f in usage_events.LANDING_SUBJECT_FIELDS),
        ledger=f"{usage_events.DATASET_NAME}.{usage_events.LEDGER_TABLE}",
        max_line_bytes=usage_events.MAX_LINE_BYTES,
    ),
)

# The ad platforms loaded so far, each with the raw totals the cross-platform ad report is checked against
# (`pipelines.ad_reporting`): a platform's settings define its `PlatformReport` and it joins here.
AD_PLATFORMS: tuple[PlatformReport, ...] = (facebook.REPORT, google_ads.PLATFORM_REPORT, linkedin_ads.REPORT)
