"""What trading on a venue costs: fees, minimum order value and the shape of a synthetic book.

``KNOWN_VENUE_COSTS`` holds base-tier figures for the venues we know (published base tiers; check
them against your own fee tier). Settings (``[venues.NAME]``) override any field; a venue with no
known fee and no setting is an error the caller reports, never a silent zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from bot.core.domain import FeeSchedule


@dataclass(frozen=True, slots=True)
class VenueCosts:
    """Costs of one venue. Synthetic books (replay/backtest) use the ``book_*`` fields:
    ``book_levels`` levels per side, the touch ``book_half_spread_bps`` from the price, each
    further level ``book_level_step_bps`` deeper, each holding ``book_depth_usd_per_level``."""

    maker_fee_bps: Decimal
    taker_fee_bps: Decimal
    min_notional_usd: Decimal = Decimal(5)
    book_half_spread_bps: Decimal = Decimal("1")
    book_level_step_bps: Decimal = Decimal("1")
    book_depth_usd_per_level: Decimal = Decimal(50_000)
    book_levels: int = 10

    @property
    def fees(self) -> FeeSchedule:
        return FeeSchedule(maker_bps=self.maker_fee_bps, taker_bps=self.taker_fee_bps)


def _c(maker: str, taker: str, min_notional: str = "5", half_spread: str = "1") -> VenueCosts:
    return VenueCosts(Decimal(maker), Decimal(taker), Decimal(min_notional), Decimal(half_spread))


# Base-tier maker/taker fees in bps, minimum order value in USD, typical half-spread in bps.
KNOWN_VENUE_COSTS: dict[str, VenueCosts] = {
    "binance": _c("2", "5", "5"),
    "binanceusdm": _c("2", "5", "5"),
    "bybit": _c("2", "5.5", "5"),
    "okx": _c("2", "5", "5"),
    "hyperliquid": _c("1.5", "4.5", "10"),
    "paradex": _c("0.3", "2", "10", "2"),
    "aster": _c("0.5", "4", "5", "2"),
    "edgex": _c("1.5", "3.8", "10", "2"),
    "grvt": _c("-1", "5.5", "10", "2"),
    "backpack": _c("2", "5", "10", "2"),
    "lighter": _c("0", "0", "10", "2"),
    "extended": _c("0", "2.5", "10", "2"),
    # Spot markets (carry legs), named "<venue>:spot": base-tier spot fees (Binance, Bybit 0.1 %,
    # OKX 0.08/0.1 %, Hyperliquid spot 0.04/0.07 %); check them against your own tier.
    "binance:spot": _c("10", "10", "5"),
    "binanceusdm:spot": _c("10", "10", "5"),
    "bybit:spot": _c("10", "10", "5"),
    "okx:spot": _c("8", "10", "5"),
    "hyperliquid:spot": _c("4", "7", "10", "2"),
}
