"""ccxt exceptions -> our error classes, in one place (LIVE.md section 3).

Order matters: ccxt's ``DuplicateOrderId`` and ``OrderNotFound`` subclass ``InvalidOrder``, and some
venues' duplicate-client-id answers arrive as plain ``InvalidOrder`` or ``ExchangeError`` (bybit
110072, okx 51016, binance -4116): a duplicate means the FIRST send went through, so it is an
unknown outcome to look up, never a rejection. ``NoChange`` (and ``MarginModeAlreadySet``) on a
set-up call is success: callers of set-up helpers catch it through ``is_no_change``.

Messages are built from the exception class name and ccxt's message only; ccxt never puts keys or
signatures into exception text, and we cut messages at 300 characters.
"""

from __future__ import annotations

import re

from ccxt.base import errors as cx

from adapters.credentials import ENV_NAMES
from adapters.errors import (
    FatalVenueError,
    OrderRejected,
    TemporaryVenueError,
    VenueError,
)
from bot.core.domain import exchange_of

# Venue error codes that mean "a duplicate client order id": the order already exists.
DUPLICATE_CLIENT_ID_CODES = {"bybit": ("110072",), "okx": ("51016",), "binanceusdm": ("-4116",), "aster": ("-4116",),
                             # Binance spot answers -2010 for a duplicate AND for a refusal: only the text tells
                             "binanceusdm:spot": ("Duplicate order sent",), "okx:spot": ("51016",)}
# Set-up answers that mean "already so": success.
NO_CHANGE_CODES = {"bybit": ("110043", "110025", "110026"), "okx": ("59000",), "binanceusdm": ("-4046", "-4059"),
                   "aster": ("-4046", "-4059")}

_FATAL = (cx.AuthenticationError, cx.NotSupported, cx.ArgumentsRequired, cx.InvalidProxySettings)
_REJECTED = (cx.InvalidOrder, cx.InsufficientFunds, cx.BadRequest, cx.OperationRejected, cx.InvalidAddress)
_MAX_MESSAGE = 300


def _has_code(text: str, codes: tuple[str, ...]) -> bool:
    return any(re.search(rf"(?<![\w-]){re.escape(code)}(?!\w)", text) for code in codes)


def is_no_change(venue: str, exc: BaseException) -> bool:
    """True when a set-up call's error means the setting already had the requested value."""
    if isinstance(exc, cx.NoChange):
        return True
    return isinstance(exc, cx.BaseError) and _has_code(str(exc), NO_CHANGE_CODES.get(venue, ()))


def is_order_not_found(exc: BaseException) -> bool:
    """True for ccxt's ``OrderNotFound`` (callers of cancel/lookup answer None for it)."""
    return isinstance(exc, cx.OrderNotFound)


def translate(venue: str, exc: BaseException) -> VenueError:
    """Map one ccxt (or transport) exception to ``TemporaryVenueError`` / ``OrderRejected`` /
    ``FatalVenueError``. For an order, ``TemporaryVenueError`` means: outcome unknown, look it up."""
    text = f"{type(exc).__name__}: {str(exc)[:_MAX_MESSAGE]}"
    if isinstance(exc, VenueError):
        return exc
    if not isinstance(exc, cx.BaseError):
        # aiohttp / asyncio / OS errors escaping ccxt: the request may or may not have arrived
        return TemporaryVenueError(venue, f"transport error, outcome unknown: {text}")
    if isinstance(exc, cx.DuplicateOrderId) or _has_code(str(exc), DUPLICATE_CLIENT_ID_CODES.get(venue, ())):
        return TemporaryVenueError(venue, f"duplicate client order id (the first send arrived): look it up: {text}")
    if isinstance(exc, cx.OrderNotFound):
        return TemporaryVenueError(venue, f"order not found: {text}")
    if isinstance(exc, cx.OperationFailed):  # NetworkError family, BadResponse, NullResponse, CancelPending
        return TemporaryVenueError(venue, text)
    if isinstance(exc, cx.AuthenticationError):
        names = ENV_NAMES.get(exchange_of(venue))
        hint = f" (check {', '.join(names.values())})" if names else ""
        return FatalVenueError(venue, f"refused the API credentials{hint}: {text}")
    if isinstance(exc, _FATAL):
        return FatalVenueError(venue, text)
    if isinstance(exc, _REJECTED):
        return OrderRejected(venue, text)
    # exact ExchangeError (unmapped codes), ExchangeClosedByUser, anything new: unknown outcome
    return TemporaryVenueError(venue, f"unclassified venue answer, outcome unknown: {text}")
