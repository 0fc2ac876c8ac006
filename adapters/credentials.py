"""API credentials, read ONLY from environment variables, never printed, logged or stored.

``Credentials`` hides its values from ``repr``/``str`` (loguru's ``diagnose`` variable dumps and
tracebacks show ``Credentials(venue='bybit', <hidden>)``), and error messages name the variables,
never their values.

Variables per venue (documented in the README):

| venue | variables |
|---|---|
| bybit | ``BYBIT_API_KEY``, ``BYBIT_API_SECRET`` |
| binanceusdm | ``BINANCEUSDM_API_KEY``, ``BINANCEUSDM_API_SECRET`` |
| okx | ``OKX_API_KEY``, ``OKX_API_SECRET``, ``OKX_API_PASSPHRASE`` |
| hyperliquid | ``HYPERLIQUID_WALLET_ADDRESS``, ``HYPERLIQUID_PRIVATE_KEY`` (an API wallet's key) |
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

ENV_NAMES: dict[str, dict[str, str]] = {
    "bybit": {"api_key": "BYBIT_API_KEY", "secret": "BYBIT_API_SECRET"},
    "binanceusdm": {"api_key": "BINANCEUSDM_API_KEY", "secret": "BINANCEUSDM_API_SECRET"},
    "okx": {"api_key": "OKX_API_KEY", "secret": "OKX_API_SECRET", "password": "OKX_API_PASSPHRASE"},
    "hyperliquid": {"wallet_address": "HYPERLIQUID_WALLET_ADDRESS", "private_key": "HYPERLIQUID_PRIVATE_KEY"},
}


# Values whose shape is fixed: checked before any request (a malformed one was only refused by
# the venue's stream later, or failed as "transport error"). The message never shows the value.
FORMATS: dict[tuple[str, str], tuple[re.Pattern[str], str]] = {
    ("hyperliquid", "wallet_address"): (re.compile(r"0x[0-9a-fA-F]{40}"), "an address: 0x and 40 hex digits"),
    ("hyperliquid", "private_key"): (re.compile(r"(0x)?[0-9a-fA-F]{64}"), "a private key: 64 hex digits, 0x optional"),
}


class CredentialsError(ValueError):
    """A required variable is missing or empty. The message names the variables, never values."""


@dataclass(frozen=True)
class Credentials:
    """One venue's secrets. ``values`` maps role (``api_key``, ``secret``...) to the secret."""

    venue: str
    values: Mapping[str, str] = field(repr=False)

    def __repr__(self) -> str:
        return f"Credentials(venue={self.venue!r}, <hidden>)"

    __str__ = __repr__

    def get(self, role: str) -> str:
        return self.values[role]

    def secrets(self) -> tuple[str, ...]:
        """Every secret value (for log/output scrubbing checks)."""
        return tuple(v for v in self.values.values() if v)


def load_credentials(venue: str, env: Mapping[str, str]) -> Credentials:
    """Read ``venue``'s variables from ``env``; ``CredentialsError`` naming any that are missing."""
    names = ENV_NAMES.get(venue)
    if names is None:
        raise CredentialsError(f"venue {venue!r} has no live credentials (known: {', '.join(sorted(ENV_NAMES))})")
    missing = [var for var in names.values() if not env.get(var, "").strip()]
    if missing:
        raise CredentialsError(
            f"venues.{venue}: set the environment variable(s) {', '.join(missing)} (keys are read only from the "
            f"environment)")
    values = {role: env[var].strip() for role, var in names.items()}
    malformed = []
    for role, value in values.items():
        pattern, shape = FORMATS.get((venue, role), (None, ""))
        if pattern is not None and not pattern.fullmatch(value):
            malformed.append(f"{names[role]} is not {shape}")
    if malformed:
        raise CredentialsError(f"venues.{venue}: {'; '.join(malformed)} (fix the environment variable)")
    return Credentials(venue=venue, values=values)


def scrub(text: str, credentials: Credentials | None) -> str:
    """``text`` with every secret of ``credentials`` replaced by ``***`` (defence in depth)."""
    if credentials is None:
        return text
    for secret in credentials.secrets():
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text
