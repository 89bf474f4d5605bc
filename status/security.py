"""What keeps the status page read-only and private: GET and HEAD only, the token when bound
beyond loopback, and the security headers on every response.

The token arrives as ``Authorization: Bearer <token>``, or once as ``?token=<token>``, which
sets an HttpOnly, SameSite=Strict cookie and redirects to the same page without it (so the token
does not stay in the address bar or the history).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from urllib.parse import quote, urlencode

from flask import Flask, Response, abort, redirect, request
from werkzeug.exceptions import MethodNotAllowed
from werkzeug.wrappers import Response as BaseResponse

from vidgen.config import Settings
from vidgen.errors import ConfigError

ALLOWED_METHODS = ("GET", "HEAD")
COOKIE_NAME = "vidgen_status"
COOKIE_MAX_AGE_SECONDS = 30 * 24 * 3600

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "media-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may well be reachable from elsewhere


def check_binding(settings: Settings) -> None:
    """Raises ConfigError when the page would listen beyond this machine without a token."""
    host = settings.status.host
    if not is_loopback(host) and not settings.status.token:
        raise ConfigError(
            f"status.host is {host}, reachable from other machines: set status.token "
            "(or VIDGEN_STATUS_TOKEN) to serve the status page there, or bind 127.0.0.1"
        )


def cookie_value(token: str) -> str:
    """What the cookie holds: derived from the token, so a stolen cookie does not reveal it."""
    return hmac.new(token.encode(), b"vidgen status cookie", hashlib.sha256).hexdigest()


def _same(supplied: str | None, expected: str) -> bool:
    return supplied is not None and hmac.compare_digest(supplied.encode(), expected.encode())


def refuse_other_methods() -> None:
    if request.method not in ALLOWED_METHODS:
        raise MethodNotAllowed(valid_methods=list(ALLOWED_METHODS))


def require_token(token: str) -> BaseResponse | None:
    """None when the request carries the token; a redirect that sets the cookie for
    ``?token=``; otherwise 401."""
    supplied = request.args.get("token")
    if supplied is not None:
        if not _same(supplied, token):
            abort(401)
        return _cookie_redirect(token)
    authorization = request.headers.get("Authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and _same(credentials.strip(), token):
        return None
    if not _same(request.cookies.get(COOKIE_NAME), cookie_value(token)):
        abort(401)
    return None


def same_site_target(path: str, query: list[tuple[str, str]]) -> str:
    """Where ``?token=`` redirects to: the same page, rebuilt from the path's segments, each
    percent-encoded, and the rest of the query, encoded again.

    Browsers drop tabs and line breaks from a URL and read a backslash as a slash, so a path
    of a slash, a tab, a slash and a host (or a slash, a backslash and a host) would take them
    to that host. Encoded, every character of the target is plain ASCII, and with empty
    segments dropped it starts with exactly one ``/``: no scheme, no host, this site.
    """
    segments = [quote(segment, safe="", errors="replace") for segment in path.split("/")]
    kept = [segment for segment in segments if segment]
    target = "/" + "/".join(kept) + ("/" if kept and path.endswith("/") else "")
    return target + (f"?{urlencode(query, errors='replace')}" if query else "")


def _cookie_redirect(token: str) -> BaseResponse:
    rest = [(k, v) for k, v in request.args.items(multi=True) if k != "token"]
    response = redirect(same_site_target(request.path, rest), code=303)
    response.set_cookie(
        COOKIE_NAME,
        cookie_value(token),
        max_age=COOKIE_MAX_AGE_SECONDS,
        httponly=True,
        samesite="Strict",
        secure=request.is_secure,
        path="/",
    )
    return response


def add_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if response.mimetype in ("text/html", "application/json"):
        response.headers.setdefault("Cache-Control", "no-cache")
    return response


def install(app: Flask, settings: Settings) -> None:
    """Hook the method check, the token check (when a token is set) and the headers."""
    app.before_request(refuse_other_methods)
    token = settings.status.token
    if token:
        app.before_request(lambda: require_token(token))
    app.after_request(add_security_headers)
