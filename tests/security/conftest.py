"""Shared by the security tests that run privacy jobs through Dagster."""

from __future__ import annotations

from resources.keyring import KeyringResource
from resources.privacy import PrivacyResource
from resources.warehouse import WarehouseResource
from tests.conftest import Platform


def privacy_resources(platform: Platform, landing: bool = False) -> dict:
    """The warehouse, keyring and privacy resources of one isolated data folder (its landing zone only if
    `landing`: the landed-file lifecycle needs it, other tests have none to scrub)."""
    return {
        "warehouse": WarehouseResource(path=str(platform.warehouse), dlt_dir=str(platform.dlt_dir),
                                       work_dir=str(platform.work_dir)),
        "keyring": KeyringResource(master_key_file=str(platform.master_key_file), keyring_path=str(platform.keyring_path)),
        "privacy": PrivacyResource(inbox_path=str(platform.root / "privacy" / "requests.sqlite"),
                                   audit_path=str(platform.root / "privacy" / "audit.jsonl"),
                                   exports_dir=str(platform.root / "exports"),
                                   landing_urls={"usage_events": str(platform.landing)} if landing else {}),
    }
