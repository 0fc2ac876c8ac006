"""Token authentication for every request (constant-time comparison).

A request is authenticated by ``Authorization: Bearer <token>``, or by the ``fa_token`` cookie
the page sets after it was opened once as ``/?token=<token>`` (the token is then removed from
the address bar by a redirect). A POST authenticated by the cookie must also carry the
``X-Requested-With`` header, which a cross-site form cannot send (CSRF).
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Mapping

from aiohttp import web

TOKEN_ENV = "FUNDING_ARB_WEB_TOKEN"
COOKIE = "fa_token"
CSRF_HEADER = "X-Requested-With"
MIN_TOKEN_CHARS = 16


def resolve_token(env: Mapping[str, str] = os.environ) -> tuple[str, bool]:
    """The token from FUNDING_ARB_WEB_TOKEN, else a new random one; the flag says it was generated."""
    token = env.get(TOKEN_ENV, "")
    if token:
        if len(token) < MIN_TOKEN_CHARS:
            from bot.errors import UserInputError

            raise UserInputError(f"environment variable {TOKEN_ENV} is shorter than {MIN_TOKEN_CHARS} characters "
                                 "(use a long random value, e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
        return token, False
    return secrets.token_urlsafe(32), True


def _matches(candidate: str | None, token: str) -> bool:
    if not candidate:
        return False
    return hmac.compare_digest(candidate.encode(), token.encode())


def check_request(request: web.Request, token: str) -> str | None:
    """How the request authenticated ("bearer", "cookie", "query"), or None."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer ") and _matches(header[len("Bearer "):].strip(), token):
        return "bearer"
    if _matches(request.cookies.get(COOKIE), token):
        if request.method not in ("GET", "HEAD") and not request.headers.get(CSRF_HEADER):
            return None
        return "cookie"
    if request.method == "GET" and request.path == "/" and _matches(request.query.get("token"), token):
        return "query"
    return None


def unauthorized() -> web.Response:
    return web.json_response({"error": "unauthorized: send Authorization: Bearer <token> "
                                       f"(the token is in {TOKEN_ENV} or was printed at start-up)"},
                             status=401, headers={"WWW-Authenticate": 'Bearer realm="funding-arb"'})


def login_redirect(token: str, secure: bool) -> web.Response:
    """Set the cookie and drop the token from the address bar."""
    response = web.HTTPFound("/")
    response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", secure=secure, path="/")
    return response
