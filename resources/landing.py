"""The events landing location as a Dagster resource (a folder or any fsspec URL)."""

from __future__ import annotations

from dagster import ConfigurableResource

from pipelines import paths


class LandingResource(ConfigurableResource):
    """Where tracker files land: `<url>/dt=YYYY-MM-DD/*.ndjson[.gz]`."""

    url: str = paths.events_landing_url()
