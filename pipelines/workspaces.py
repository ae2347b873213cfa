"""Workspace ids: the tenant key of every row and of every encryption key.

The event contract's `workspace_id` pattern is this one (a test holds them equal). Data that cannot be
attributed to a valid workspace (a tracker line with a broken workspace id) is kept under the platform's
own `_unattributed` workspace key, which erasure searches too.
"""

WORKSPACE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
UNATTRIBUTED_WORKSPACE = "_unattributed"
