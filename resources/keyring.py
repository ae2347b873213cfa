"""The keyring as a Dagster resource: the master key comes from the environment, never from run config."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource

from pipelines import paths
from pipelines.privacy.keyring import Keyring, platform_master_key


class KeyringResource(ConfigurableResource):
    """Opens the keyring; a missing or wrong master key fails here, before anything is written.

    The key is read by `platform_master_key` (GTG_MASTER_KEY, else the key file; generated only in the
    sandbox). `master_key` is for tests that need a given key; deployments leave it unset, so the key never
    enters Dagster's run config or storage.
    """

    master_key: str | None = None
    master_key_file: str = str(paths.master_key_file())
    keyring_path: str = str(paths.keyring_path())

    def open(self) -> Keyring:
        key = platform_master_key(Path(self.master_key_file), self.master_key)
        return Keyring.open(self.keyring_path, key)
