"""Bybit start-up: markets from the venue, idempotent account set-up, clock skew.

Set-up answers "not modified" (110025 position mode, 110026 margin mode, 110043 leverage) are
success, so running the set-up on every start is harmless.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from decimal import Decimal

from adapters.bybit import config
from adapters.bybit import parsing as wire
from adapters.bybit.errors import NO_CHANGE
from adapters.bybit.http import BybitHttp
from adapters.errors import FatalVenueError, OrderRejected, TemporaryVenueError
from adapters.markets import VenueMarket


async def load_markets(http: BybitHttp, symbols: Iterable[str] | None = None) -> tuple[dict[str, VenueMarket], list[str]]:
    """Every trading linear USDT perpetual (optionally only ``symbols``, canonical), plus skipped lines."""
    wanted = set(symbols) if symbols is not None else None
    markets: dict[str, VenueMarket] = {}
    skipped: list[str] = []
    cursor = None
    for _ in range(20):
        answer = await http.call("get_instruments_info", category=config.CATEGORY, limit=1000,
                                 **({"cursor": cursor} if cursor else {}))
        parsed, dropped = wire.parse_instruments(answer)
        skipped.extend(dropped)
        for market in parsed:
            if market.settle == config.SETTLE_COIN and (wanted is None or market.symbol in wanted):
                markets[market.symbol] = market
        cursor = (answer.get("result") or {}).get("nextPageCursor")
        if not cursor:
            break
    return markets, skipped


async def _idempotent(http: BybitHttp, method: str, **params: object) -> str:
    try:
        await http.call(method, **params)
    except (OrderRejected, TemporaryVenueError) as exc:
        if any(f"retCode {code}:" in str(exc) for code in NO_CHANGE):
            return "unchanged"
        raise
    return "set"


async def prepare_account(http: BybitHttp, markets: Iterable[VenueMarket], *, leverage: Decimal) -> list[str]:
    """One-way position mode, cross margin (regular), ``leverage`` on every symbol. Returns one line
    per step ("set" or "unchanged"); a refusal other than "not modified" raises."""
    lines = [f"position mode one-way: {await _idempotent(http, 'switch_position_mode', category=config.CATEGORY, coin=config.SETTLE_COIN, mode=0)}"]
    lines.append(f"margin mode regular (cross): {await _idempotent(http, 'set_margin_mode', setMarginMode='REGULAR_MARGIN')}")
    lev = str(leverage.normalize())
    for market in markets:
        state = await _idempotent(http, "set_leverage", category=config.CATEGORY, symbol=market.venue_symbol,
                                  buyLeverage=lev, sellLeverage=lev)
        lines.append(f"leverage {lev}x {market.venue_symbol}: {state}")
    return lines


async def clock_skew_ms(http: BybitHttp) -> int:
    """Venue time minus local time (ms), measured at the midpoint of the round trip."""
    before = time.time_ns() // 1_000_000
    answer = await http.call("get_server_time")
    after = time.time_ns() // 1_000_000
    result = answer.get("result") or {}
    venue_ms = int(result.get("timeNano", 0)) // 1_000_000 or int(result.get("timeSecond", 0)) * 1000
    if venue_ms <= 0:
        raise TemporaryVenueError(config.VENUE, "server time missing from the answer")
    return venue_ms - (before + after) // 2


def check_skew(skew_ms: int, *, limit_ms: int) -> None:
    """``FatalVenueError`` when the local clock is further than ``limit_ms`` from the venue's."""
    if abs(skew_ms) > limit_ms:
        raise FatalVenueError(config.VENUE, f"local clock is {skew_ms} ms off the venue's (limit {limit_ms} ms): "
                                            f"sync the system clock (NTP)")
