"""The keyring as a Dagster resource: the master key comes from the environment (EnvVar), never config."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource

from pipelines import paths
from pipelines.privacy.keyring import Keyring, load_master_key


class KeyringResource(ConfigurableResource):
    """Opens the keyring; a missing or wrong master key fails here, before anything is written.

    `master_key` is set from the GTG_MASTER_KEY environment variable through `EnvVar` when it exists; in the
    sandbox a local key file (mode 0600) is generated instead.
    """

    master_key: str | None = None
    master_key_file: str = str(paths.master_key_file())
    keyring_path: str = str(paths.keyring_path())
    create_key_if_missing: bool = paths.is_sandbox()

    def open(self) -> Keyring:
        key = load_master_key(self.master_key, Path(self.master_key_file), self.create_key_if_missing)
        return Keyring.open(self.keyring_path, key)
