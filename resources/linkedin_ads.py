"""Where the LinkedIn Marketing API is, as a Dagster resource.

`sandbox` is set from GTG_ENV by definitions.py, never inferred from missing settings: in the sandbox
`base_url()` starts the local LinkedIn Ads server for the duration of a run; otherwise the real `/rest` API is
used with each connection's own token (the registry holds it; the app needs no secret of its own to read).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from dagster import ConfigurableResource

from pipelines.linkedin_ads import settings
from pipelines.linkedin_ads.sandbox import running_sandbox


class LinkedInAdsResource(ConfigurableResource):
    """The API the LinkedIn Ads assets read; only an explicit `sandbox=True` starts the fake server."""

    sandbox: bool = False

    @contextmanager
    def base_url(self) -> Iterator[str]:
        """LinkedIn's `/rest`, or the sandbox's running until the block ends."""
        if not self.sandbox:
            yield settings.API_BASE_URL
            return
        with running_sandbox() as url:
            yield url
