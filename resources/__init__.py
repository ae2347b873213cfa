"""Dagster resources: the warehouse, the keyring and the landing location."""
