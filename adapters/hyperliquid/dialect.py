"""Hyperliquid specifics for the shared ccxt executor and feed.

Orders carry an adapter-signed ``expiresAfter`` (now + 5 s): the venue refuses an action that
arrives later, which is what lets a not-found answer mean "can never execute" after that window.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any

from adapters.ccxt_common.dialect import CcxtDialect
from adapters.errors import IncompleteVenueData
from adapters.hyperliquid import parsing as wire
from adapters.markets import VenueMarket
from adapters.validation import decimal_from_wire
from bot.core.domain import OrderSide

VENUE = "hyperliquid"
ORDER_EXPIRY_MS = 5000
CLOCK_SKEW_ALLOWANCE_MS = 2000


def install_settled_client_init(exchange: Any) -> None:
    """Skip ccxt's per-order ``initialize_client`` once everything it settles is known.

    ccxt's hyperliquid ``create_orders`` (and so every order) first awaits ``initialize_client``:
    an ``asyncio.gather`` of the builder-fee approval, the referrer and the account-abstraction
    read, i.e. three tasks and two event-loop passes even when all three are settled, and, while
    the abstraction is unknown (the venue has not answered ``userAbstraction`` with a string),
    one more info request before the order (bench/live.py measured ~6 ms from an entry leg handed
    to its request leaving). With the builder fee and the referrer switched off by our options and
    the abstraction read once at account set-up (``read_account_abstraction``), the order goes
    straight to signing; while the abstraction is still unknown ccxt's own path runs as before."""
    original = exchange.initialize_client

    async def initialize_client() -> bool:
        options = exchange.options
        if (options.get("approvedBuilderFee") is True and options.get("refSet") is True
                and options.get("enableUnifiedMargin") is not None):
            return True
        return await original()

    exchange.initialize_client = initialize_client


async def read_account_abstraction(exchange: Any) -> str:
    """Ask the venue once whether the account is unified (ccxt caches the answer in its options
    and reads balances accordingly); the set-up line says what it answered."""
    unified, _ = await exchange.is_unified_enabled("fetchBalance")
    if unified is None:  # the venue gave no usable answer: ccxt asks again before each order
        return "unknown (ccxt asks the venue again before each order)"
    return "unified" if unified else "not unified"


def _order_params(wire_cid: str, tif: str, reduce_only: bool, now_ms: int) -> dict[str, Any]:
    return {"clientOrderId": wire_cid, "timeInForce": "Gtc" if tif == "GTC" else "Ioc", "reduceOnly": reduce_only,
            "expiresAfter": now_ms + ORDER_EXPIRY_MS}


def _equity(balance: Mapping[str, Any]) -> Decimal:
    info = balance.get("info")
    if isinstance(info, Mapping) and "marginSummary" in info:
        return wire.parse_clearinghouse_state(info)[1]
    total = (balance.get("total") or {}).get("USDC")
    if total is None:
        raise IncompleteVenueData(VENUE, "fetch_balance has neither marginSummary nor a USDC total")
    return decimal_from_wire(total, "total.USDC", VENUE)


def _round_price(price: Decimal, market: VenueMarket, side: OrderSide) -> Decimal:
    sz_decimals = -market.instrument.lot_size_base.normalize().as_tuple().exponent
    return wire.round_price(price, sz_decimals=max(0, int(sz_decimals)), side=side)


DIALECT = CcxtDialect(
    venue=VENUE, settle="USDC", expiry_ms=ORDER_EXPIRY_MS + CLOCK_SKEW_ALLOWANCE_MS, order_params=_order_params,
    parse_funding=lambda info, market: wire.parse_user_funding(info),
    equity_usd=_equity,
    round_price=_round_price,
    rate=(15, 1.0),  # documented: 1200 weight/min
)


async def load_markets(exchange: Any, symbols: Iterable[str] | None = None) -> tuple[dict[str, VenueMarket], list[str]]:
    """Perpetuals from ccxt's markets (raw universe entries), asset index from ccxt's ``baseId``."""
    await exchange.load_markets()
    wanted = set(symbols) if symbols is not None else None
    markets: dict[str, VenueMarket] = {}
    skipped: list[str] = []
    for m in exchange.markets.values():
        if not m.get("swap"):
            continue
        info = dict(m.get("info") or {})
        info.setdefault("name", m.get("baseName") or m.get("base"))
        parsed, dropped = wire.parse_meta({"universe": [info]})
        skipped.extend(dropped)
        for market in parsed:
            if ":" in market.venue_symbol:
                continue  # HIP-3 builder-deployed dexes are not traded
            if wanted is None or market.symbol in wanted:
                markets[market.symbol] = replace(market, ccxt_symbol=m["symbol"], venue_id=str(m.get("baseId")))
    return markets, skipped


async def fetch_quotes(exchange: Any, markets: Mapping[str, VenueMarket], now_ms: int) -> tuple[list, list[str]]:
    """``metaAndAssetCtxs`` (hourly funding, marks), parsed by our parser."""
    return wire.parse_meta_and_asset_ctxs(await exchange.publicPostInfo({"type": "metaAndAssetCtxs"}), ts_ms=now_ms)
