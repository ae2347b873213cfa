"""Provider-initiated deletions, turned into ordinary erasure requests (same inbox, same path, same audit).

Meta calls the app's data-deletion callback with a `signed_request` (base64url signature, a dot, base64url
JSON with the app-scoped `user_id` and `issued_at`), signed with the app secret (HMAC-SHA256); the callback
must answer with a URL where the person can follow the deletion and a confirmation code. The signature is
checked before the payload is parsed (an unsigned payload is never read), a request issued more than
MAX_AGE ago is refused (a replayed old one), and the confirmation code is derived from the signature, so the
same callback delivered again is recognised and answered with the first request's id and code. Google sends no payload we must
parse beyond the account: when a user revokes GTG's access, the connection's data is erased the same way.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json

from pipelines.privacy.requests import Request, RequestError

MAX_AGE = dt.timedelta(hours=24)
CLOCK_SKEW = dt.timedelta(minutes=5)
MAX_SIGNED_REQUEST_CHARS = 16384  # Meta's are a few hundred characters


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def meta_deletion_request(signed_request: str, app_secret: str, workspace_id: str,
                          now: dt.datetime | None = None) -> Request:
    """Verify Meta's signed request, then build the erasure of that app-scoped user in `workspace_id`."""
    if not isinstance(signed_request, str) or len(signed_request) > MAX_SIGNED_REQUEST_CHARS or "." not in signed_request:
        raise RequestError("the Meta signed_request is malformed")
    signature, payload = signed_request.split(".", 1)
    try:
        given = _b64url(signature)
    except (binascii.Error, ValueError):
        raise RequestError("the Meta signed_request signature is malformed") from None
    expected = hmac.new(app_secret.encode(), payload.encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(given, expected):
        raise RequestError("the Meta signed_request signature does not match the app secret")
    try:  # signed by Meta: only now is the payload read
        data = json.loads(_b64url(payload))
    except (binascii.Error, ValueError, RecursionError):
        raise RequestError("the Meta signed_request payload is malformed") from None
    if not isinstance(data, dict) or str(data.get("algorithm", "")).upper() != "HMAC-SHA256":
        raise RequestError("the Meta signed_request does not use HMAC-SHA256")
    issued = data.get("issued_at")
    if not isinstance(issued, int) or isinstance(issued, bool):
        raise RequestError("the Meta signed_request has no issued_at time")
    now = now or dt.datetime.now(dt.timezone.utc)
    age = now - dt.datetime.fromtimestamp(issued, dt.timezone.utc)
    if age > MAX_AGE or age < -CLOCK_SKEW:
        raise RequestError(f"the Meta signed_request was not issued within the last {MAX_AGE.total_seconds() / 3600:g} hours")
    if not data.get("user_id"):
        raise RequestError("the Meta signed_request names no user_id")
    code = hmac.new(app_secret.encode(), b"gtg/meta-confirmation|" + given, hashlib.sha256).hexdigest()[:16]
    return Request(request_type="erasure", workspace_id=workspace_id, identity_kind="facebook_user_id",
                   identity_value=str(data["user_id"]), source="meta_data_deletion", requested_by="meta",
                   confirmation_code=code)


def meta_callback_response(status_base_url: str, request_id: str, confirmation_code: str) -> dict[str, str]:
    """The JSON body Meta expects back from the callback."""
    return {"url": f"{status_base_url.rstrip('/')}/{request_id}", "confirmation_code": confirmation_code}


def google_revocation_request(workspace_id: str, google_user_id: str) -> Request:
    """A user revoked GTG's access to their Google account: erase what the connection brought in."""
    return Request(request_type="erasure", workspace_id=workspace_id, identity_kind="google_user_id",
                   identity_value=google_user_id, source="google_revocation", requested_by="google")
