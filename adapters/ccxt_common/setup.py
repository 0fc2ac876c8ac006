"""Idempotent account set-up on ccxt venues: one-way positions, cross margin, leverage.

"Not modified" answers (``NoChange``, ``MarginModeAlreadySet``, and the venue codes in
``errors.NO_CHANGE_CODES``) are success, so the set-up can run on every start.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal
from typing import Any

from adapters.ccxt_common.errors import is_no_change, translate
from adapters.markets import VenueMarket


async def _step(venue: str, call: Callable[[], Awaitable[Any]]) -> str:
    try:
        await call()
    except Exception as exc:  # noqa: BLE001  ("not modified" is success; the rest is classified and raised)
        if is_no_change(venue, exc):
            return "unchanged"
        raise translate(venue, exc) from None
    return "set"


async def prepare_account(venue: str, exchange: Any, markets: Iterable[VenueMarket], *, leverage: Decimal) -> list[str]:
    """One line per step ("set"/"unchanged"); a refusal other than "not modified" raises ours."""
    lev: int | float = int(leverage) if leverage == leverage.to_integral_value() else float(leverage)
    lines: list[str] = []
    markets = list(markets)
    if venue in ("binanceusdm", "okx"):
        first = markets[0].ccxt_symbol if markets else None
        lines.append(f"position mode one-way: {await _step(venue, lambda: exchange.set_position_mode(False, first))}")
    for m in markets:
        sym = m.ccxt_symbol
        if venue == "binanceusdm":
            lines.append(f"margin cross {sym}: {await _step(venue, lambda s=sym: exchange.set_margin_mode('cross', s))}")
            state = await _step(venue, lambda s=sym: exchange.set_leverage(lev, s))
        elif venue == "okx":
            state = await _step(venue, lambda s=sym: exchange.set_leverage(lev, s, {"mgnMode": "cross"}))
        else:  # hyperliquid: one-way by design; cross margin chosen with the leverage
            state = await _step(venue, lambda s=sym: exchange.set_leverage(lev, s, {"marginMode": "cross"}))
        lines.append(f"leverage {leverage}x {sym}: {state}")
    return lines
