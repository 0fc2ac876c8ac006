"""Idempotent account set-up on ccxt venues: clock check, one-way positions, cross margin, leverage.

"Not modified" answers (``NoChange``, ``MarginModeAlreadySet``, and the venue codes in
``errors.NO_CHANGE_CODES``) are success, so the set-up can run on every start. OKX answers 59000
to a position-mode switch whenever positions or orders are open, whatever the current mode: the
account's ``posMode`` is then read, and only ``net_mode`` counts as "unchanged".
OKX refuses private requests signed more than 30 s off its clock (50102), Binance more than its
``recvWindow`` (5 s), and both sign with our clock: a skew inside those windows passes every call while
the bot's own timestamps are wrong, so the set-up reads the venue's time first (``/public/time``,
``/fapi/v1/time``) and refuses to trade beyond ``max_skew_ms``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal
from typing import Any

from adapters.ccxt_common.errors import is_no_change, translate
from adapters.errors import FatalVenueError, TemporaryVenueError
from adapters.markets import VenueMarket

# Venues whose time endpoint the set-up reads (bybit checks its own, via pybit). Hyperliquid has no
# time endpoint (its signed nonces tolerate a day), so the bot's own timestamps there rest on NTP alone.
CLOCK_CHECKED = ("okx", "binanceusdm")


async def _step(venue: str, call: Callable[[], Awaitable[Any]]) -> str:
    try:
        await call()
    except Exception as exc:  # noqa: BLE001  ("not modified" is success; the rest is classified and raised)
        if is_no_change(venue, exc):
            return "unchanged"
        raise translate(venue, exc) from None
    return "set"


async def clock_skew_ms(venue: str, exchange: Any) -> int:
    """Venue time minus local time (ms), measured at the midpoint of the round trip."""
    before = time.time_ns() // 1_000_000
    try:
        venue_ms = await exchange.fetch_time()
    except Exception as exc:  # noqa: BLE001  (classified and re-raised as ours)
        raise translate(venue, exc) from None
    after = time.time_ns() // 1_000_000
    if not isinstance(venue_ms, int) or venue_ms <= 0:
        raise TemporaryVenueError(venue, f"server time missing from the answer ({venue_ms!r})")
    return venue_ms - (before + after) // 2


async def _one_way_okx(exchange: Any) -> str:
    """OKX: switch to net_mode; 59000 (positions/orders open) is "unchanged" only if already net_mode."""
    try:
        await exchange.set_position_mode(False)
    except Exception as exc:  # noqa: BLE001  (59000 is checked against the account; the rest is classified)
        if not is_no_change("okx", exc):
            raise translate("okx", exc) from None
        try:
            mode = await exchange.fetch_position_mode()
        except Exception as inner:  # noqa: BLE001
            raise translate("okx", inner) from None
        if mode.get("hedged") is not False:
            raise FatalVenueError("okx", "the account is in long/short (hedge) position mode and cannot switch while "
                                         "positions or orders are open: close them, or switch the account to "
                                         "one-way (net) mode on OKX, then start again") from None
        return "unchanged"
    return "set"


async def prepare_account(venue: str, exchange: Any, markets: Iterable[VenueMarket], *, leverage: Decimal,
                          max_skew_ms: int = 1000) -> list[str]:
    """One line per step ("set"/"unchanged"); a refusal other than "not modified" raises ours.
    ``max_skew_ms``: the local clock's allowed distance from the venue's (``CLOCK_CHECKED`` venues)."""
    lev: int | float = int(leverage) if leverage == leverage.to_integral_value() else float(leverage)
    lines: list[str] = []
    markets = list(markets)
    if venue in CLOCK_CHECKED:
        skew = await clock_skew_ms(venue, exchange)
        if abs(skew) > max_skew_ms:
            raise FatalVenueError(venue, f"local clock is {skew} ms off the venue's (limit {max_skew_ms} ms): "
                                         f"sync the system clock (NTP)")
    if venue == "okx":
        lines.append(f"position mode one-way: {await _one_way_okx(exchange)}")
    elif venue == "hyperliquid":
        from adapters.hyperliquid.dialect import read_account_abstraction
        from adapters.hyperliquid.signer import check_signer

        async def user_role(address: str) -> Any:
            return await exchange.public_post_info({"type": "userRole", "user": address})

        try:
            # before anything else: a key of another account would trade where the bot never reads
            lines.append(await check_signer(exchange.walletAddress, exchange.privateKey, user_role))
            abstraction = await read_account_abstraction(exchange)
        except FatalVenueError:
            raise
        except Exception as exc:  # noqa: BLE001  (classified and re-raised as ours)
            raise translate(venue, exc) from None
        lines.append(f"account abstraction {abstraction}: unchanged")  # read, never switched by us
    elif venue == "binanceusdm":
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
