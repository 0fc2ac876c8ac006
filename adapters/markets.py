"""What an adapter knows about one listed perpetual beyond the domain ``Instrument``.

``Instrument`` is what the strategy sees (sizes in base units). The adapter also needs the
venue's contract size (OKX sizes orders in contracts of ``ctVal`` base each) and its own
identifiers to translate our orders into the venue's units.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_UP, Decimal

from bot.core.domain import Instrument, OrderSide


@dataclass(frozen=True, slots=True)
class VenueMarket:
    """One perpetual on one venue: the domain instrument plus the venue's own units."""

    instrument: Instrument
    contract_size_base: Decimal = Decimal(1)  # base units per venue order unit ("contract")
    venue_id: str = ""  # venue-internal id when it differs from the symbol (Hyperliquid asset index)
    settle: str = "USDT"
    ccxt_symbol: str = ""  # the unified ccxt symbol ("BTC/USDT:USDT") for ccxt-driven venues

    @property
    def venue(self) -> str:
        return self.instrument.venue

    @property
    def symbol(self) -> str:
        return self.instrument.symbol

    @property
    def venue_symbol(self) -> str:
        return self.instrument.venue_symbol

    def contracts(self, size_base: Decimal) -> Decimal:
        """``size_base`` in venue order units; ``ValueError`` unless it is a whole number of lots."""
        lots = size_base / self.instrument.lot_size_base
        if lots != lots.to_integral_value():
            raise ValueError(f"size_base {size_base} is not a whole number of lots of {self.venue_symbol}")
        return size_base / self.contract_size_base

    def base(self, contracts: Decimal) -> Decimal:
        """Venue order units back to base units."""
        return contracts * self.contract_size_base


def round_size_down(size_base: Decimal, lot_size_base: Decimal) -> Decimal:
    """Largest multiple of the lot not above ``size_base`` (we never round a size up)."""
    return (size_base / lot_size_base).to_integral_value(rounding=ROUND_DOWN) * lot_size_base


def round_limit_price(price: Decimal, tick_size: Decimal, side: OrderSide) -> Decimal:
    """Round a limit price onto the tick CONSERVATIVELY: a buy bound down, a sell bound up.

    The bound is the slippage cap; rounding it the other way (as ccxt's price_to_precision does,
    to nearest) could let an order execute beyond the cap.
    """
    rounding = ROUND_DOWN if side is OrderSide.BUY else ROUND_UP
    return (price / tick_size).to_integral_value(rounding=rounding) * tick_size
