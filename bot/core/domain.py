"""Frozen domain types shared by every layer.

Money, prices, sizes and rates are ``Decimal``; timestamps are integer milliseconds since the
Unix epoch, UTC (``*_ts_ms``). Venue payloads are translated into these types at the adapter
boundary (or by the simulated market) and nothing downstream ever sees a float.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum

ZERO = Decimal(0)
ONE = Decimal(1)
BPS = Decimal("0.0001")
HOURS_PER_YEAR = Decimal(8760)


class OrderSide(str, Enum):
    """Direction of an order."""

    BUY = "buy"
    SELL = "sell"

    @property
    def opposite(self) -> "OrderSide":
        return OrderSide.SELL if self is OrderSide.BUY else OrderSide.BUY


class LegSide(str, Enum):
    """Direction of a position leg. A long leg is opened with a BUY, a short leg with a SELL."""

    LONG = "long"
    SHORT = "short"

    @property
    def open_side(self) -> OrderSide:
        return OrderSide.BUY if self is LegSide.LONG else OrderSide.SELL

    @property
    def close_side(self) -> OrderSide:
        return self.open_side.opposite

    @property
    def sign(self) -> int:
        return 1 if self is LegSide.LONG else -1


class OrderType(str, Enum):
    MARKET = "market"
    LIMIT = "limit"


class TimeInForce(str, Enum):
    IOC = "ioc"  # immediate-or-cancel: whatever does not fill at once is cancelled
    GTC = "gtc"  # rests on the book until filled or cancelled


class OrderStatus(str, Enum):
    NEW = "new"  # accepted and resting
    PARTIALLY_FILLED = "partially_filled"  # resting with some fills
    FILLED = "filled"
    CANCELED = "canceled"  # terminal; may carry partial fills (IOC remainder)
    REJECTED = "rejected"  # terminal; nothing filled

    @property
    def is_terminal(self) -> bool:
        return self in (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED)


class Liquidity(str, Enum):
    MAKER = "maker"
    TAKER = "taker"


class ExecutionMode(str, Enum):
    """How entry legs execute (settings ``strategy.execution``).

    ``TAKER``: both legs as IOC limit orders, sent concurrently. ``MAKER_TAKER``: one leg rests as a
    post-only maker order; each of its fills is hedged at once by an IOC taker order on the other
    leg. Exits are taker-taker in both modes.
    """

    TAKER = "taker"
    MAKER_TAKER = "maker_taker"


class InstrumentKind(str, Enum):
    """What a leg trades on its venue.

    ``PERP``: a perpetual contract (pays or receives funding, can be shorted, has a venue position).
    ``SPOT``: the coin itself. A spot leg pays and receives NO funding, cannot be liquidated, and
    cannot be shorted without borrowing, which the bot never does: spot legs are LONG only (carry =
    long spot / short perp). Its "position" is the wallet's base-coin balance minus the baseline
    recorded before the bot bought (the account may hold coins the bot does not own).
    """

    PERP = "perp"
    SPOT = "spot"


class PairKind(str, Enum):
    """The kinds of a position's two legs (settings ``strategy.pair_kinds``)."""

    PERP_PERP = "perp_perp"  # long perp / short perp on two venues (the original trade)
    SPOT_PERP = "spot_perp"  # carry: long spot / short perp (one venue, or two)


# A spot market is addressed everywhere a venue name is expected (quotes, books, instruments, fees,
# orders, positions' long_venue) by its venue name plus this suffix: "bybit:spot" is Bybit's spot
# market beside "bybit" (Bybit linear perps). Keys such as (venue, symbol) therefore stay unique
# when one exchange carries both legs of a carry pair, and executors route "X:spot" to X's spot API.
SPOT_SUFFIX = ":spot"


def spot_market(venue: str) -> str:
    """The market name of ``venue``'s spot market ("bybit" -> "bybit:spot")."""
    if venue.endswith(SPOT_SUFFIX):
        raise ValueError(f"{venue!r} already names a spot market")
    return venue + SPOT_SUFFIX


def market_kind(market: str) -> InstrumentKind:
    """``SPOT`` for a spot market name ("bybit:spot"), else ``PERP``."""
    return InstrumentKind.SPOT if market.endswith(SPOT_SUFFIX) else InstrumentKind.PERP


def is_spot(market: str) -> bool:
    """True for a spot market name ("bybit:spot")."""
    return market.endswith(SPOT_SUFFIX)


def exchange_of(market: str) -> str:
    """The exchange behind a market name: "bybit:spot" -> "bybit", "bybit" -> "bybit"."""
    return market[: -len(SPOT_SUFFIX)] if market.endswith(SPOT_SUFFIX) else market


def pair_kind(long_venue: str, short_venue: str) -> PairKind | None:
    """The kind of a (long, short) pair of market names; None when the pair is not tradable
    (a spot SHORT would need borrowing; spot/spot earns no funding)."""
    if is_spot(short_venue):
        return None
    return PairKind.SPOT_PERP if is_spot(long_venue) else PairKind.PERP_PERP


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """A venue's base-tier fees in basis points of notional (negative = rebate)."""

    maker_bps: Decimal
    taker_bps: Decimal

    def rate(self, liquidity: Liquidity) -> Decimal:
        """Fee as a fraction of notional."""
        return (self.maker_bps if liquidity is Liquidity.MAKER else self.taker_bps) * BPS


@dataclass(frozen=True, slots=True)
class Instrument:
    """One tradable instrument on one venue, keyed by the canonical base-asset ``symbol``.

    ``kind`` is ``PERP`` (default: a perpetual contract) or ``SPOT``; a spot instrument's ``venue``
    is a spot market name (``spot_market(exchange)``, e.g. "bybit:spot") and its
    ``funding_interval_hours`` is meaningless (spot pays no funding; by convention 1).
    """

    venue: str
    symbol: str  # canonical base asset, e.g. "BTC"
    venue_symbol: str  # the venue's own name, e.g. "BTCUSDT"
    tick_size: Decimal
    lot_size_base: Decimal  # quantity step
    min_size_base: Decimal
    funding_interval_hours: Decimal  # per venue AND per symbol; may change over time
    min_notional_usd: Decimal = ZERO
    kind: InstrumentKind = InstrumentKind.PERP


@dataclass(frozen=True, slots=True)
class FundingQuote:
    """The current (predicted or last-settled) funding rate of one instrument.

    ``rate_per_interval`` is a plain decimal fraction (0.0001 = 1 bp) paid every
    ``interval_hours``: longs pay shorts when it is positive.
    """

    venue: str
    symbol: str
    rate_per_interval: Decimal
    interval_hours: Decimal
    next_funding_ts_ms: int
    mark_price: Decimal
    ts_ms: int
    # True when ``mark_price`` is not this venue's own price but the symbol's reference price
    # (history without marks for this venue): no basis may be charged against it.
    mark_is_reference: bool = False
    # The forecast average hourly rate of this leg over the strategy's horizon (``bot.forecast``),
    # when the strategy attached one; the scanner ranks by it instead of the current rate.
    forecast_hourly_rate: Decimal | None = None
    # rate_per_interval / interval_hours if both are Decimals, the rate finite and the interval
    # finite and positive; else None (an unusable quote). Computed once when the quote is built:
    # the scanner reads it for every quote on every ranking. Not a constructor argument;
    # ``dataclasses.replace`` recomputes it.
    hourly_rate_or_none: Decimal | None = field(init=False, repr=False, compare=False)
    # What the scanner ranks by: ``forecast_hourly_rate`` when set (and finite), else
    # ``hourly_rate_or_none``. None = unusable.
    rank_hourly_rate_or_none: Decimal | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        rate, interval, hourly = self.rate_per_interval, self.interval_hours, None
        if isinstance(rate, Decimal) and isinstance(interval, Decimal):
            if rate.is_finite() and interval.is_finite() and interval > 0:
                try:
                    hourly = rate / interval
                except ArithmeticError:  # overflow at the extremes of the exponent range
                    hourly = None
        object.__setattr__(self, "hourly_rate_or_none", hourly)
        forecast = self.forecast_hourly_rate
        rank = hourly
        if hourly is not None and isinstance(forecast, Decimal) and forecast.is_finite():
            rank = forecast
        object.__setattr__(self, "rank_hourly_rate_or_none", rank)

    @property
    def hourly_rate(self) -> Decimal:
        """``rate_per_interval / interval_hours`` (computed, or raising, as that division does when
        ``hourly_rate_or_none`` is None)."""
        hourly = self.hourly_rate_or_none
        return self.rate_per_interval / self.interval_hours if hourly is None else hourly


@dataclass(frozen=True, slots=True)
class BookLevel:
    price: Decimal
    size_base: Decimal


@dataclass(frozen=True, slots=True)
class OrderBook:
    """Top levels of one instrument's book: bids best (highest) first, asks best (lowest) first."""

    venue: str
    symbol: str
    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]
    ts_ms: int

    @property
    def best_bid(self) -> Decimal | None:
        return self.bids[0].price if self.bids else None

    @property
    def best_ask(self) -> Decimal | None:
        return self.asks[0].price if self.asks else None

    @property
    def mid(self) -> Decimal | None:
        if not self.bids or not self.asks:
            return None
        return (self.bids[0].price + self.asks[0].price) / 2

    def levels_for(self, side: OrderSide) -> tuple[BookLevel, ...]:
        """The levels an order of ``side`` consumes (a BUY takes asks)."""
        return self.asks if side is OrderSide.BUY else self.bids


@dataclass(frozen=True, slots=True)
class Opportunity:
    """One ranked pair: LONG on ``long_venue``, SHORT on ``short_venue``, same symbol and size.

    ``spread_hourly`` is the funding earned per hour per unit of notional; ``costs`` and
    ``expected_net`` are USD for ``notional_usd`` held ``horizon_hours``.
    ``breakeven_hours`` is None when the spread is not positive (never breaks even).
    """

    symbol: str
    long_venue: str
    short_venue: str
    long_rate: Decimal
    long_interval_hours: Decimal
    short_rate: Decimal
    short_interval_hours: Decimal
    spread_hourly: Decimal
    apr: Decimal
    costs: Decimal
    expected_net: Decimal
    breakeven_hours: Decimal | None
    notional_usd: Decimal
    horizon_hours: Decimal
    fees_usd: Decimal
    slippage_usd: Decimal
    basis_usd: Decimal
    long_price: Decimal  # expected average entry price of the long leg
    short_price: Decimal
    costs_estimated: bool = False  # True when no books were available (replay): slippage/basis estimated
    size_base: Decimal | None = None  # the ONE lot-rounded base quantity both legs trade (None: unknown)
    # The spread the venues pay right now (rate / interval of each leg); ``spread_hourly`` is the
    # forecast average over the horizon that the ranking and ``expected_net`` use (equal without a forecast).
    current_spread_hourly: Decimal | None = None

    @property
    def pair_kind(self) -> PairKind | None:
        """``SPOT_PERP`` when the long leg is a spot market (carry), ``PERP_PERP`` otherwise."""
        return pair_kind(self.long_venue, self.short_venue)


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A command to a venue. ``client_order_id`` is deterministic so retries never duplicate.

    On a spot market (``venue`` = "X:spot") ``reduce_only`` is always False (spot has none: the
    engine bounds every spot sell by what the bot's own wallet balance above its baseline holds)
    and ``size_base`` of a BUY is the GROSS quantity (a base-coin fee is taken out of it).
    """

    client_order_id: str
    venue: str
    symbol: str
    side: OrderSide
    size_base: Decimal
    order_type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.IOC
    reduce_only: bool = False
    # Post-only (GTC limits only): the venue rejects the order rather than let it take liquidity.
    post_only: bool = False


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution. ``trade_id`` is unique per venue; ``fee_usd`` is positive when paid.

    ``fee_base``: the part of the fee the venue took in the BASE coin (spot buys on most venues:
    buy 1 BTC, receive 0.999 BTC). It is already included in ``fee_usd`` (valued at ``price``); what
    the wallet received is ``net_base = size_base - fee_base``. Zero for perps and USD-charged fees.
    """

    venue: str
    symbol: str
    client_order_id: str
    trade_id: str
    side: OrderSide
    price: Decimal
    size_base: Decimal
    fee_usd: Decimal
    liquidity: Liquidity
    ts_ms: int
    fee_base: Decimal = ZERO

    @property
    def net_base(self) -> Decimal:
        """Base quantity that actually moved: ``size_base - fee_base`` (``size_base`` for perps)."""
        return self.size_base - self.fee_base


@dataclass(frozen=True, slots=True)
class OrderReport:
    """What the venue says about one order right now."""

    client_order_id: str
    venue: str
    symbol: str
    side: OrderSide
    status: OrderStatus
    requested_base: Decimal
    filled_base: Decimal
    avg_price: Decimal | None
    fills: tuple[Fill, ...] = ()
    reduce_only: bool = False
    venue_order_id: str | None = None
    reason: str | None = None  # why rejected/canceled, when the venue says
    ts_ms: int = 0
    # Spot buys: base coin the venue kept as fee out of ``filled_base`` (sum of the fills'
    # ``fee_base``); the wallet received ``net_filled_base``. Zero for perps.
    fee_base: Decimal = ZERO

    @property
    def net_filled_base(self) -> Decimal:
        """``filled_base - fee_base``: what actually reached (or left) the wallet."""
        return self.filled_base - self.fee_base


@dataclass(frozen=True, slots=True)
class VenuePosition:
    """The venue's own view of a position. ``size_base`` is signed: + long, - short."""

    venue: str
    symbol: str
    size_base: Decimal
    entry_price: Decimal
    mark_price: Decimal | None = None
    liquidation_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class FundingPayment:
    """A settled funding payment on one venue position. ``amount_usd`` is + received, - paid."""

    payment_id: str
    venue: str
    symbol: str
    ts_ms: int
    rate: Decimal
    position_size_base: Decimal  # signed at the settlement instant
    mark_price: Decimal
    amount_usd: Decimal


@dataclass(frozen=True, slots=True)
class MarketSnapshot:
    """An immutable view of everything the strategy may look at, taken at ``now_ts_ms``."""

    now_ts_ms: int
    quotes: dict[tuple[str, str], FundingQuote] = field(default_factory=dict)  # (venue, symbol)
    # Mappings: ``bot.market_view`` fills these lazily (a book is built and validated when read).
    books: Mapping[tuple[str, str], OrderBook] = field(default_factory=dict)
    instruments: Mapping[tuple[str, str], Instrument] = field(default_factory=dict)
    fees: dict[str, FeeSchedule] = field(default_factory=dict)  # venue -> fees


def funding_payment_usd(rate: Decimal, position_size_base: Decimal, mark_price: Decimal) -> Decimal:
    """Funding cash flow for a signed position: longs pay positive rates, shorts receive them."""
    return -rate * position_size_base * mark_price


@dataclass(frozen=True, slots=True)
class FundingSettlement:
    """A venue settled funding for one symbol at ``ts_ms``: every position held then is paid."""

    venue: str
    symbol: str
    ts_ms: int
    rate: Decimal  # per interval, the rate that settled
    interval_hours: Decimal
    mark_price: Decimal
