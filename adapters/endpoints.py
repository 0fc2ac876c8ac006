"""Base URL overrides for live adapters (the local venue emulator, a proxy): loopback only unless
the user explicitly allows another host, so a typo can never send signed orders somewhere unexpected."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


class EndpointError(ValueError):
    """A base URL override is malformed or not allowed. The message names the settings key and the fix."""


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and any 127.0.0.0/8 or ::1 address."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(venue: str, url: str | None, *, allow_remote: bool = False, key: str = "base_url") -> str | None:
    """Return ``url`` without a trailing slash (None stays None), or raise ``EndpointError``.

    Accepted: ``http(s)://host[:port]`` (``ws(s)://`` for stream URLs) whose host is loopback, or
    any host when ``allow_remote`` is true.
    """
    if url is None or url == "":
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
        raise EndpointError(
            f"venues.{venue}.{key}: {url!r} is not an http(s):// or ws(s):// URL with a host; "
            f"use e.g. http://127.0.0.1:8801")
    if not allow_remote and not is_loopback_host(parts.hostname):
        raise EndpointError(
            f"venues.{venue}.{key}: host {parts.hostname!r} is not loopback; set "
            f"venues.{venue}.allow_remote_base_url = true to allow it explicitly")
    return url.rstrip("/")
