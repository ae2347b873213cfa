"""Sandbox data for local development and tests.

Why a separate package: the pipelines must be exercised end to end without production data, so the
generators here produce realistic, seeded, reproducible input in the same places and formats that the
production trackers and providers use (see `pipelines.sandbox.events` for usage events, `pipelines.sandbox.mail` for the Gmail, People
and Microsoft Graph servers the mail and contacts sources sync from).
"""
