"""Bybit v5 ``category=spot`` payloads -> domain types for the spot leg of a carry position.

Quirks handled here and nowhere else:
- Spot instruments have no funding and no contract: ``lotSizeFilter.basePrecision`` is the quantity
  step, ``minOrderQty`` the minimum size, ``minOrderAmt`` the minimum notional (quote coin).
- A spot execution's ``execFee`` is in ``feeCurrency``: the BASE coin on buys (the wallet receives
  ``execQty - execFee``), the quote coin on sells. Any other fee coin (a fee-deduction token) is
  refused: the bot could not tell what reached the wallet. ``Fill.fee_base`` carries the base part,
  ``Fill.fee_usd`` the whole fee valued at the execution price.
- The wallet (``/v5/account/wallet-balance``) lists one row per coin; ``walletBalance`` is the total
  (free + locked in orders). A coin absent from the list holds 0.
Every fill and wallet passes ``adapters.validation`` before anyone sees it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any

from adapters.bybit.parsing import parse_order, result_list
from adapters.errors import AbsurdVenueData, IncompleteVenueData
from adapters.markets import VenueMarket
from adapters.validation import validate_spot_fill, validate_wallet_base
from adapters.wire import (
    canonical_symbol,
    dec,
    dec_or_none,
    field,
    non_negative,
    positive,
    ts_field,
)
from bot.core.domain import (
    ZERO,
    Fill,
    FundingQuote,
    Instrument,
    InstrumentKind,
    Liquidity,
    OrderBook,
    OrderReport,
    OrderSide,
    spot_market,
)

EXCHANGE = "bybit"
MARKET = spot_market(EXCHANGE)  # "bybit:spot"
QUOTE_COIN = "USDT"
SPOT_QUOTE_NEXT_MS = 3_600_000  # a spot "funding quote" settles nothing; next time is a formality


def parse_spot_instrument(item: Mapping[str, Any], market: str = MARKET) -> VenueMarket:
    """One ``instruments-info?category=spot`` item -> ``VenueMarket`` of kind SPOT."""
    venue_symbol = str(field(item, "symbol", market))
    lot = field(item, "lotSizeFilter", market)
    price_filter = field(item, "priceFilter", market)
    instrument = Instrument(
        venue=market,
        symbol=canonical_symbol(str(field(item, "baseCoin", market))),
        venue_symbol=venue_symbol,
        tick_size=positive(dec(price_filter, "tickSize", market), "tickSize", market),
        lot_size_base=positive(dec(lot, "basePrecision", market), "basePrecision", market),
        min_size_base=positive(dec(lot, "minOrderQty", market), "minOrderQty", market),
        funding_interval_hours=Decimal(1),  # spot pays no funding (docs/carry.md convention)
        min_notional_usd=non_negative(dec_or_none(lot, "minOrderAmt", market) or ZERO, "minOrderAmt", market),
        kind=InstrumentKind.SPOT,
    )
    return VenueMarket(instrument=instrument, settle=str(item.get("quoteCoin") or QUOTE_COIN))


def parse_spot_instruments(payload: Mapping[str, Any], market: str = MARKET) -> tuple[list[VenueMarket], list[str]]:
    """Every trading spot pair quoted in USDT, plus one line per skipped item."""
    markets: list[VenueMarket] = []
    skipped: list[str] = []
    for item in result_list(payload, market):
        if item.get("status") != "Trading":
            skipped.append(f"{item.get('symbol')}: status {item.get('status')!r}")
            continue
        if item.get("quoteCoin") != QUOTE_COIN:
            continue
        try:
            markets.append(parse_spot_instrument(item, market))
        except AbsurdVenueData as exc:
            skipped.append(str(exc))
    return markets, skipped


def _side(value: Any, market: str) -> OrderSide:
    if value == "Buy":
        return OrderSide.BUY
    if value == "Sell":
        return OrderSide.SELL
    raise AbsurdVenueData(market, f"side: unknown value {value!r}")


def parse_spot_execution(item: Mapping[str, Any], *, symbol: str, client_order_id: str, quote_coin: str = QUOTE_COIN,
                         market: str = MARKET) -> Fill:
    """A spot trade (``/v5/execution/list?category=spot`` or the ``execution`` stream) -> validated ``Fill``.

    The fee coin decides where the fee went: base coin -> ``fee_base`` (and ``fee_usd`` = fee x price),
    quote coin -> ``fee_usd`` only. Anything else is ``AbsurdVenueData``.
    """
    if item.get("execType") != "Trade":
        raise IncompleteVenueData(market, f"execType {item.get('execType')!r} is not a trade")
    price = positive(dec(item, "execPrice", market), "execPrice", market)
    size = positive(dec(item, "execQty", market), "execQty", market)
    fee = dec(item, "execFee", market)
    coin = str(field(item, "feeCurrency", market)).upper()
    if coin == symbol.upper():
        fee_base, fee_usd = fee, fee * price
    elif coin == quote_coin.upper():
        fee_base, fee_usd = ZERO, fee
    else:
        raise AbsurdVenueData(market, f"feeCurrency {coin!r} is neither {symbol} nor {quote_coin}: what reached the "
                                      f"wallet is unknown (turn off fee deduction in another token)")
    return validate_spot_fill(Fill(
        venue=market, symbol=symbol, client_order_id=client_order_id, trade_id=str(field(item, "execId", market)),
        side=_side(item.get("side"), market), price=price, size_base=size, fee_usd=fee_usd,
        liquidity=Liquidity.MAKER if item.get("isMaker") is True else Liquidity.TAKER,
        ts_ms=ts_field(item, "execTime", market), fee_base=fee_base,
    ))


def parse_spot_order(item: Mapping[str, Any], *, symbol: str, client_order_id: str, fills: tuple[Fill, ...],
                     market: str = MARKET) -> OrderReport:
    """A spot order row -> ``OrderReport`` on the spot market; ``fee_base`` is the sum of the fills'.

    A filled quantity the fills do not explain yet (executions lag the order) leaves ``fee_base`` at
    what the fills show: the engine reads the report again before it trusts the net amount."""
    report = parse_order(item, symbol=symbol, client_order_id=client_order_id, fills=fills)
    return replace(report, venue=market, reduce_only=False, fee_base=sum((f.fee_base for f in fills), ZERO))


def parse_spot_wallet(payload: Mapping[str, Any], symbols: Iterable[str] | None = None,
                      market: str = MARKET) -> dict[str, Decimal]:
    """``/v5/account/wallet-balance`` -> base-coin balances by canonical symbol (quote coin excluded),
    validated (finite, not negative). ``symbols`` limits the answer to those coins."""
    accounts = result_list(payload, market)
    if not accounts:
        raise IncompleteVenueData(market, "wallet-balance: no account in the answer")
    coins = accounts[0].get("coin") if isinstance(accounts[0], Mapping) else None
    if not isinstance(coins, list):
        raise IncompleteVenueData(market, "wallet-balance: coin list missing")
    wanted = {s.upper() for s in symbols} if symbols is not None else None
    out: dict[str, Decimal] = {}
    for row in coins:
        name = str(field(row, "coin", market)).upper()
        if name == QUOTE_COIN or (wanted is not None and name not in wanted):
            continue
        out[canonical_symbol(name)] = dec(row, "walletBalance", market)
    return validate_wallet_base(market, out)


def spot_quote(book: OrderBook, market: str = MARKET) -> FundingQuote | None:
    """The zero-funding quote a spot market publishes (docs/carry.md): rate 0 per 1 h, mark = mid."""
    mid = book.mid
    if mid is None:
        return None
    return FundingQuote(venue=market, symbol=book.symbol, rate_per_interval=ZERO, interval_hours=Decimal(1),
                        next_funding_ts_ms=(book.ts_ms // SPOT_QUOTE_NEXT_MS + 1) * SPOT_QUOTE_NEXT_MS,
                        mark_price=mid, ts_ms=book.ts_ms)
