"""Deterministic client order ids.

The same (position, purpose, leg, attempt) always yields the same id, so a retry after an
unknown outcome can never place a second order: the venue rejects the duplicate id, or the
order is found by looking the id up. Ids are ``[0-9a-z]`` only and 28 characters long, which
fits every venue we know of (Bybit orderLinkId <= 36 ``[A-Za-z0-9_-]``, Binance
newClientOrderId <= 36, OKX clOrdId <= 32 alphanumeric).

Layout: ``fa`` + 20 hex of BLAKE2b(position_id) + purpose letter + leg letter + 4-digit attempt.
All orders of one position share the prefix, which makes them easy to find in a venue's UI.
"""

from __future__ import annotations

import hashlib

from bot.core.domain import LegSide
from storage.records import OrderPurpose

CLIENT_ORDER_ID_MAX_LEN = 32
MAX_ATTEMPT = 9999

_PURPOSE_LETTER = {
    OrderPurpose.OPEN: "o",
    OrderPurpose.CLOSE: "c",
    OrderPurpose.REPAIR: "r",
    OrderPurpose.UNWIND: "u",
    OrderPurpose.FLATTEN: "f",
}
_LEG_LETTER = {LegSide.LONG: "l", LegSide.SHORT: "s", None: "x"}


def client_order_id(
    position_id: str, purpose: OrderPurpose, leg: LegSide | None, attempt: int
) -> str:
    """Deterministic, venue-safe client order id (28 chars, lowercase alphanumeric).

    ``leg`` is None only for orders that belong to no leg (a flatten of an unowned position).
    ``attempt`` counts retries of the same purpose and leg, 0..9999.
    """
    if not position_id:
        raise ValueError("position_id must be a non-empty string")
    purpose = OrderPurpose(purpose)
    leg = None if leg is None else LegSide(leg)
    if isinstance(attempt, bool) or not isinstance(attempt, int) or not 0 <= attempt <= MAX_ATTEMPT:
        raise ValueError(f"attempt must be an int in 0..{MAX_ATTEMPT}, got {attempt!r}")
    digest = hashlib.blake2b(position_id.encode("utf-8"), digest_size=10).hexdigest()
    return f"fa{digest}{_PURPOSE_LETTER[purpose]}{_LEG_LETTER[leg]}{attempt:04d}"
