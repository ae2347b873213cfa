"""Who connected an ad account, so Meta's data-deletion callback reaches what GTG synced through them.

Meta calls the data-deletion callback for a user of GTG's Meta app: a person who logged in with Facebook to
connect an ad account (the connection's owner). The callback names them by their app-scoped user id, the
`id` Graph answers for `/me` with their token. A lead is not such a user: the person who filled a form never
used GTG's app, Meta sends no callback for them, and a lead object carries no user id at all (only
`field_data`, `ad_id`, `form_id`, `created_time`); a lead is erased by the e-mail or phone they gave.

So each sync records the owner's id as a blind index (keyed per workspace, kind `user.unique_id.meta`, no
plaintext) in the connection's state, and a callback for that user disconnects every Meta connection they
own: the registry forgets the tokens and the privacy engine erases every row synced through the connection,
leads included (Meta Platform Terms 3.d: delete Platform Data obtained from a user when they ask).
"""

from __future__ import annotations

from facebook_business.adobjects.user import User

from pipelines.connections.disconnect import disconnect
from pipelines.connections.registry import STATUSES, Connection, ConnectionRegistry
from pipelines.facebook.client import GraphClient
from pipelines.facebook.settings import PROVIDER
from pipelines.privacy.requests import Inbox
from pipelines.privacy.subjects import request_kind

STATE_KEY = "owner"  # hex blind index of the app-scoped id of the token's user
OWNER_KIND = request_kind("facebook_user_id")


def owner_index(cipher, workspace_id: str, user_id: str) -> str:
    return cipher.blind_index(workspace_id, [user_id], kind=OWNER_KIND).to_pylist()[0].hex()


def record_owner(client: GraphClient, cipher, workspace_id: str, state: dict) -> None:
    """Store the blind index of the token's user (`/me`) in the connection's state."""
    me = client.call(lambda: User("me", api=client.api).api_get(fields=["id"]))
    state[STATE_KEY] = owner_index(cipher, workspace_id, str(me["id"]))


def owned_connections(registry: ConnectionRegistry, cipher, user_id: str) -> list[Connection]:
    """The Meta connections, in any workspace and not yet revoked, whose token belongs to `user_id`."""
    live = tuple(s for s in STATUSES if s != "revoked")
    return [c for c in registry.list(PROVIDER, statuses=live)
            if c.sync_state.get(STATE_KEY) == owner_index(cipher, c.workspace_id, user_id)]


def erase_meta_user(registry: ConnectionRegistry, inbox: Inbox, cipher, user_id: str) -> list[str]:
    """Meta's data-deletion callback for `user_id`: disconnect each connection they own (revoking its tokens
    and filing the erasure of its rows); returns the erasure requests' ids."""
    return [disconnect(registry, inbox, c.connection_id, requested_by="meta", source="meta_data_deletion")
            for c in owned_connections(registry, cipher, user_id)]
