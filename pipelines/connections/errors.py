"""The one error a provider source raises that the registry treats apart from every other failure."""

from __future__ import annotations


class ReauthorizationRequired(Exception):
    """The provider refused the connection's token (expired, or revoked by the user): retrying cannot help.

    Raised by a source with a message naming the provider and its error code (e.g. "Meta error 190"), never a
    token or a personal value; the connection becomes `needs_reauth` instead of crash-looping on schedule.
    """
