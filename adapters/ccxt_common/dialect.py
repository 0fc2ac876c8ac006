"""What differs per ccxt venue, in one small object per venue (``adapters/<venue>/dialect.py``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from adapters.markets import VenueMarket
from bot.core.domain import FundingPayment, OrderSide


@dataclass(frozen=True)
class CcxtDialect:
    """Per-venue hooks of the shared ccxt executor and feed.

    ``expiry_ms``: how long after a send a not-found order may still appear (venue-side request
    expiry + clock-skew allowance; a long grace where the venue signs no expiry).
    ``order_params(wire_cid, tif, reduce_only, now_ms)``: create_order params.
    ``parse_funding(info, market)``: one raw funding row (``info`` of ccxt's funding history) ->
    payment with the venue's sign normalised (+ = received).
    ``equity_usd(balance)``: account equity from ``fetch_balance``.
    ``rate``: an aiolimiter bucket every REST call of the executor passes (on top of ccxt's throttle).
    """

    venue: str
    settle: str
    expiry_ms: int
    order_params: Callable[[str, str, bool, int], dict[str, Any]]
    parse_funding: Callable[[Mapping[str, Any], VenueMarket], FundingPayment]
    equity_usd: Callable[[Mapping[str, Any]], Decimal]
    lookup_params: Callable[[str], dict[str, Any]] = field(default=lambda wire: {"clientOrderId": wire})
    round_price: Callable[[Decimal, VenueMarket, OrderSide], Decimal] | None = None  # venue price rules beyond the tick
    rate: tuple[int, float] = (10, 1.0)
    funding_history_per_symbol: bool = True  # False: one account-wide funding call, rows carry their symbol
    order_stream: bool = True  # wake the executor from ccxt.pro watch_orders (False: REST polling only)  # our own request bucket (max requests, per seconds), below the venue's limit
