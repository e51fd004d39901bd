"""The dashboard's login session: a cookie signed with a key derived from the API token, so a
new token ends every session (docs/web.md, Sign-in).

The cookie holds its expiry and the session's CSRF token, signed with HMAC-SHA256; it never
holds the API token. Standard library only: no dependency for forty lines.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

COOKIE = "alchemiser_session"
LIFETIME_S = 8 * 3600
"""A sign-in lasts a working day."""


@dataclass(frozen=True)
class Session:
    expires: int
    csrf: str


class SessionSigner:
    def __init__(self, api_token: str) -> None:
        self._key = hmac.new(api_token.encode(), b"alchemiser web session", hashlib.sha256).digest()
        self._token = api_token.encode()

    def token_matches(self, given: str) -> bool:
        return hmac.compare_digest(given.strip().encode(), self._token)

    def issue(self, now: float | None = None) -> str:
        issued = time.time() if now is None else now
        body = json.dumps({"exp": int(issued) + LIFETIME_S, "csrf": secrets.token_urlsafe(24)})
        payload = base64.urlsafe_b64encode(body.encode()).decode()
        return f"{payload}.{self._signature(payload)}"

    def read(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session, or None when the cookie is missing, forged or expired."""
        if not cookie or "." not in cookie:
            return None
        payload, signature = cookie.rsplit(".", 1)
        if not hmac.compare_digest(signature, self._signature(payload)):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(payload.encode()))
            session = Session(int(data["exp"]), str(data["csrf"]))
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires > (time.time() if now is None else now) else None

    def _signature(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()
