"""Provider-initiated deletions, turned into ordinary erasure requests (same inbox, same path, same audit).

Meta calls the app's data-deletion callback with a `signed_request` (base64url signature, a dot, base64url
JSON with the app-scoped `user_id`), signed with the app secret (HMAC-SHA256); the callback must answer with
a URL where the person can follow the deletion and a confirmation code. Google sends no payload we must
parse beyond the account: when a user revokes GTG's access, the connection's data is erased the same way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets

from pipelines.privacy.requests import Request, RequestError


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def meta_deletion_request(signed_request: str, app_secret: str, workspace_id: str) -> Request:
    """Verify Meta's signed request and build the erasure of that app-scoped user in `workspace_id`."""
    try:
        signature, payload = signed_request.split(".", 1)
        data = json.loads(_b64url(payload))
        expected = hmac.new(app_secret.encode(), payload.encode(), hashlib.sha256).digest()
    except (ValueError, TypeError):
        raise RequestError("the Meta signed_request is malformed") from None
    if not isinstance(data, dict) or str(data.get("algorithm", "")).upper() != "HMAC-SHA256":
        raise RequestError("the Meta signed_request does not use HMAC-SHA256")
    try:
        given = _b64url(signature)
    except ValueError:
        raise RequestError("the Meta signed_request signature is malformed") from None
    if not hmac.compare_digest(given, expected):
        raise RequestError("the Meta signed_request signature does not match the app secret")
    if not data.get("user_id"):
        raise RequestError("the Meta signed_request names no user_id")
    return Request(request_type="erasure", workspace_id=workspace_id, identity_kind="facebook_user_id",
                   identity_value=str(data["user_id"]), source="meta_data_deletion", requested_by="meta",
                   confirmation_code=secrets.token_hex(8))


def meta_callback_response(status_base_url: str, request_id: str, confirmation_code: str) -> dict[str, str]:
    """The JSON body Meta expects back from the callback."""
    return {"url": f"{status_base_url.rstrip('/')}/{request_id}", "confirmation_code": confirmation_code}


def google_revocation_request(workspace_id: str, google_user_id: str) -> Request:
    """A user revoked GTG's access to their Google account: erase what the connection brought in."""
    return Request(request_type="erasure", workspace_id=workspace_id, identity_kind="google_user_id",
                   identity_value=google_user_id, source="google_revocation", requested_by="google")
