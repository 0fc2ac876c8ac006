"""Profiles of the simulated venues and symbols.

Each simulated venue mirrors a real one's traits (funding interval, base-tier fees from
bot/core/venue_costs.py, book depth and spread, naming) and says in its name that it is simulated.
Symbol traits (price, volatility, tick, lot, depth) depend only on the symbol's name, never on
the market seed, so "BTC" looks the same in every run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal

from bot.core.domain import FeeSchedule
from bot.core.history import default_steps


@dataclass(frozen=True, slots=True)
class VenueProfile:
    """Static traits of one simulated venue."""

    name: str
    like: str  # the real venue it mirrors
    fees: FeeSchedule
    interval_hours: int  # funding interval of most symbols
    calibration: str  # key into paper.calibration.REAL_FUNDING_STATS
    venue_symbol_format: str  # e.g. "{symbol}USDT"
    rate_decimals: int  # funding rates are published with this many decimals
    basis_std_bps: float  # stationary std of the mark's basis to the shared index price
    spread_bps: float  # quoted top-of-book spread for a symbol of spread multiplier 1
    level_spacing_bps: float  # distance between book levels (at least one tick)
    depth_scale: float  # multiplies a symbol's USD depth per level
    book_levels: int
    min_notional_usd: Decimal
    alt_interval_hours: tuple[int, ...] = ()  # other intervals this venue uses for some symbols
    alt_interval_share: float = 0.0  # share of symbols (by name) on an alternative interval

    @property
    def interval_choices(self) -> tuple[int, ...]:
        return (self.interval_hours, *self.alt_interval_hours)


def _fees(maker_bps: str, taker_bps: str) -> FeeSchedule:
    return FeeSchedule(maker_bps=Decimal(maker_bps), taker_bps=Decimal(taker_bps))


_PROFILES = (
    VenueProfile("sim-hourly", "hyperliquid", _fees("1.5", "4.5"), 1, "hyperliquid", "{symbol}", 10,
                 basis_std_bps=5.0, spread_bps=1.0, level_spacing_bps=1.0, depth_scale=0.6,
                 book_levels=20, min_notional_usd=Decimal(10)),
    VenueProfile("sim-8h", "binance", _fees("2", "5"), 8, "binance", "{symbol}USDT", 8,
                 basis_std_bps=3.0, spread_bps=0.5, level_spacing_bps=0.5, depth_scale=1.0,
                 book_levels=20, min_notional_usd=Decimal(5), alt_interval_hours=(4,)),
    VenueProfile("sim-mixed", "bybit", _fees("2", "5.5"), 8, "bybit", "{symbol}USDT", 8,
                 basis_std_bps=4.0, spread_bps=0.8, level_spacing_bps=0.8, depth_scale=0.8,
                 book_levels=20, min_notional_usd=Decimal(5), alt_interval_hours=(4,),
                 alt_interval_share=0.35),
    VenueProfile("sim-okx-like", "okx", _fees("2", "5"), 8, "binance", "{symbol}-USDT-SWAP", 8,
                 basis_std_bps=4.0, spread_bps=0.8, level_spacing_bps=1.0, depth_scale=0.7,
                 book_levels=15, min_notional_usd=Decimal(5)),
    VenueProfile("sim-paradex-like", "paradex", _fees("0.3", "2"), 8, "binance", "{symbol}-USD-PERP", 8,
                 basis_std_bps=8.0, spread_bps=2.5, level_spacing_bps=2.0, depth_scale=0.15,
                 book_levels=12, min_notional_usd=Decimal(10)),
    VenueProfile("sim-lighter-like", "lighter", _fees("0", "0"), 1, "hyperliquid", "{symbol}", 10,
                 basis_std_bps=7.0, spread_bps=2.0, level_spacing_bps=2.0, depth_scale=0.25,
                 book_levels=12, min_notional_usd=Decimal(10)),
    VenueProfile("sim-aster-like", "aster", _fees("0.5", "4"), 4, "bybit", "{symbol}USDT", 8,
                 basis_std_bps=8.0, spread_bps=3.0, level_spacing_bps=2.5, depth_scale=0.2,
                 book_levels=10, min_notional_usd=Decimal(5), alt_interval_hours=(8,),
                 alt_interval_share=0.3),
    VenueProfile("sim-backpack-like", "backpack", _fees("2", "5"), 1, "hyperliquid", "{symbol}_USDC_PERP", 10,
                 basis_std_bps=10.0, spread_bps=4.0, level_spacing_bps=3.0, depth_scale=0.1,
                 book_levels=10, min_notional_usd=Decimal(5)),
    VenueProfile("sim-grvt-like", "grvt", _fees("-1", "5.5"), 8, "binance", "{symbol}_USDT_Perp", 8,
                 basis_std_bps=8.0, spread_bps=3.0, level_spacing_bps=2.5, depth_scale=0.15,
                 book_levels=10, min_notional_usd=Decimal(5)),
    VenueProfile("sim-edgex-like", "edgex", _fees("1.5", "3.8"), 8, "binance", "{symbol}USD", 8,
                 basis_std_bps=9.0, spread_bps=3.0, level_spacing_bps=2.5, depth_scale=0.1,
                 book_levels=10, min_notional_usd=Decimal(5)),
)
VENUE_PROFILES: dict[str, VenueProfile] = {p.name: p for p in _PROFILES}
DEFAULT_VENUES = ("sim-hourly", "sim-8h", "sim-mixed")


@dataclass(frozen=True, slots=True)
class SymbolTraits:
    """Static traits of one simulated symbol (same on every venue)."""

    symbol: str
    base_price: float  # starting index price, USD
    annual_vol: float  # of the shared log price
    tick_size: Decimal
    lot_size_base: Decimal
    depth_usd_per_level: float  # on a venue of depth_scale 1
    spread_mult: float = 1.0  # multiplies the venue's spread_bps


def _real(symbol: str, price: float, vol: float, tick: str, lot: str, depth: float, spread: float) -> SymbolTraits:
    return SymbolTraits(symbol, price, vol, Decimal(tick), Decimal(lot), depth, spread)


# Real-looking names with round-number prices and Binance-like steps (order = default universe).
REAL_SYMBOLS = (
    _real("BTC", 100_000.0, 0.50, "0.1", "0.001", 400_000.0, 0.4),
    _real("ETH", 3_500.0, 0.65, "0.01", "0.001", 250_000.0, 0.5),
    _real("SOL", 180.0, 0.80, "0.01", "0.01", 120_000.0, 0.8),
    _real("XRP", 2.5, 0.80, "0.0001", "0.1", 80_000.0, 1.0),
    _real("DOGE", 0.2, 0.90, "0.00001", "1", 60_000.0, 1.2),
    _real("BNB", 900.0, 0.55, "0.01", "0.01", 60_000.0, 1.0),
    _real("AVAX", 25.0, 0.90, "0.001", "0.1", 30_000.0, 1.5),
    _real("LINK", 20.0, 0.85, "0.001", "0.01", 30_000.0, 1.5),
    _real("SUI", 3.5, 1.00, "0.0001", "0.1", 30_000.0, 1.5),
    _real("LTC", 100.0, 0.75, "0.01", "0.001", 25_000.0, 1.5),
    _real("ARB", 0.5, 1.00, "0.0001", "0.1", 15_000.0, 2.0),
    _real("OP", 0.8, 1.00, "0.0001", "0.1", 15_000.0, 2.0),
    _real("NEAR", 3.0, 1.00, "0.001", "1", 15_000.0, 2.0),
    _real("APT", 5.0, 1.00, "0.0001", "0.1", 12_000.0, 2.0),
    _real("TRX", 0.3, 0.50, "0.00001", "1", 20_000.0, 1.5),
    _real("TON", 3.0, 0.90, "0.0001", "0.1", 8_000.0, 2.5),
    _real("TIA", 2.5, 1.10, "0.0001", "1", 10_000.0, 2.5),
    _real("INJ", 15.0, 1.00, "0.001", "0.1", 10_000.0, 2.5),
    _real("SEI", 0.3, 1.10, "0.0001", "1", 8_000.0, 3.0),
    _real("WIF", 0.8, 1.30, "0.0001", "1", 8_000.0, 3.0),
    _real("ORDI", 8.0, 1.30, "0.001", "0.1", 6_000.0, 3.0),
)
_REAL_BY_NAME = {t.symbol: t for t in REAL_SYMBOLS}
DEFAULT_SYMBOL_COUNT = 12
MAX_SYMBOL_COUNT = 999


def generated_symbol_name(index: int) -> str:
    """Name of the ``index``-th generated symbol (1-based): SIM001, SIM002, ..."""
    return f"SIM{index:03d}"


def symbol_universe(count: int) -> tuple[SymbolTraits, ...]:
    """The first ``count`` real-looking symbols, then generated ones (SIM001...)."""
    if not 1 <= count <= MAX_SYMBOL_COUNT:
        raise ValueError(f"symbol count must be 1..{MAX_SYMBOL_COUNT}, got {count}")
    real = REAL_SYMBOLS[:count]
    generated = tuple(symbol_traits(generated_symbol_name(i)) for i in range(1, count - len(real) + 1))
    return real + generated


def symbol_traits(symbol: str) -> SymbolTraits:
    """Traits of a real-looking symbol from the table, else derived from the name alone."""
    known = _REAL_BY_NAME.get(symbol)
    if known is not None:
        return known
    rng = random.Random(f"sim-symbol/{symbol}")
    price = 10 ** rng.uniform(-2.0, 2.7)
    tick, lot = default_steps(Decimal(f"{price:.6g}"))
    return SymbolTraits(
        symbol=symbol,
        base_price=price,
        annual_vol=rng.uniform(0.7, 1.5),
        tick_size=tick,
        lot_size_base=lot,
        depth_usd_per_level=10 ** rng.uniform(3.3, 4.3),
        spread_mult=rng.uniform(2.0, 5.0),
    )


def interval_for(profile: VenueProfile, symbol: str) -> int:
    """The funding interval ``profile`` uses for ``symbol``: deterministic from the names.

    BTC and ETH always use the venue's main interval, as on the real venues.
    """
    if not profile.alt_interval_hours or symbol in ("BTC", "ETH"):
        return profile.interval_hours
    rng = random.Random(f"sim-interval/{profile.name}/{symbol}")
    if rng.random() < profile.alt_interval_share:
        return rng.choice(profile.alt_interval_hours)
    return profile.interval_hours
