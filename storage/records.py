"""Row types the repository reads and writes (frozen, Decimal-valued, ms UTC timestamps)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Any

from bot.core.domain import ZERO, LegSide, Opportunity, OrderRequest, OrderStatus

# Position states after which nothing more happens to a position. The machine may add states;
# callers can pass their own set to ``Storage.load_open_positions``.
TERMINAL_POSITION_STATES: frozenset[str] = frozenset({"closed"})


class OrderPurpose(str, Enum):
    """Why an order was sent; part of its deterministic client order id."""

    OPEN = "open"
    CLOSE = "close"
    REPAIR = "repair"  # complete the missing quantity on the lagging leg
    UNWIND = "unwind"  # reduce the excess leg back to the hedge
    FLATTEN = "flatten"  # shutdown / policy flatten, possibly of a position nobody owns


class MachineKind(str, Enum):
    BOT = "bot"
    POSITION = "position"


class Severity(str, Enum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class PositionRecord:
    """One delta-neutral pair as persisted: LONG ``long_venue``, SHORT ``short_venue``.

    ``long_size_base`` / ``short_size_base`` are the unsigned base quantities currently held on
    each leg; ``target_size_base`` is the quantity both legs aim for. ``entry_*`` record what the
    scanner expected at entry (``entry_details`` holds the whole Opportunity, Decimals as strings).
    """

    id: str
    symbol: str
    long_venue: str
    short_venue: str
    state: str
    target_size_base: Decimal
    notional_usd: Decimal
    created_at_ts_ms: int
    updated_at_ts_ms: int
    long_size_base: Decimal = ZERO
    short_size_base: Decimal = ZERO
    entry_spread_hourly: Decimal | None = None
    entry_apr: Decimal | None = None
    entry_expected_net_usd: Decimal | None = None
    entry_costs_usd: Decimal | None = None
    entry_long_price: Decimal | None = None
    entry_short_price: Decimal | None = None
    entry_details: dict[str, Any] | None = None
    opened_at_ts_ms: int | None = None
    closed_at_ts_ms: int | None = None
    exit_reason: str | None = None
    last_error: str | None = None
    unhedged_ms_entry: int | None = None
    unhedged_ms_exit: int | None = None

    @classmethod
    def from_opportunity(
        cls,
        position_id: str,
        opportunity: Opportunity,
        target_size_base: Decimal,
        state: str,
        ts_ms: int,
    ) -> "PositionRecord":
        """A fresh row for ``opportunity`` sized ``target_size_base`` (nothing held yet)."""
        details = {name: getattr(opportunity, name) for name in opportunity.__dataclass_fields__}
        return cls(
            id=position_id,
            symbol=opportunity.symbol,
            long_venue=opportunity.long_venue,
            short_venue=opportunity.short_venue,
            state=state,
            target_size_base=target_size_base,
            notional_usd=opportunity.notional_usd,
            created_at_ts_ms=ts_ms,
            updated_at_ts_ms=ts_ms,
            entry_spread_hourly=opportunity.spread_hourly,
            entry_apr=opportunity.apr,
            entry_expected_net_usd=opportunity.expected_net,
            entry_costs_usd=opportunity.costs,
            entry_long_price=opportunity.long_price,
            entry_short_price=opportunity.short_price,
            entry_details=details,
        )


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """An order about to be sent, persisted BEFORE it leaves the process.

    ``position_id`` is None only for a flatten of a venue position no stored position owns.
    """

    request: OrderRequest
    purpose: OrderPurpose
    created_at_ts_ms: int
    position_id: str | None
    leg: LegSide | None = None
    attempt: int = 0


@dataclass(frozen=True, slots=True)
class OrderRow:
    """A stored order. ``status`` None means pending: the intent is persisted but no venue
    answer has been recorded yet (sent and unknown, or never sent): look it up by client id."""

    request: OrderRequest
    purpose: OrderPurpose
    position_id: str | None
    leg: LegSide | None
    attempt: int
    status: OrderStatus | None
    filled_base: Decimal
    avg_price: Decimal | None
    venue_order_id: str | None
    reason: str | None
    created_at_ts_ms: int
    updated_at_ts_ms: int

    @property
    def client_order_id(self) -> str:
        return self.request.client_order_id

    @property
    def is_terminal(self) -> bool:
        return self.status is not None and self.status.is_terminal


@dataclass(frozen=True, slots=True)
class TransitionRecord:
    """One state change of the bot machine or a position machine."""

    ts_ms: int
    machine: MachineKind
    entity_id: str
    source: str
    dest: str
    trigger: str
    reason: str | None = None
    details: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class EventRecord:
    """Anything worth keeping that is not a transition: denials, breaker changes, halts,
    reconciliation findings, signals."""

    ts_ms: int
    kind: str
    severity: Severity
    message: str
    entity_id: str | None = None
    details: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class BotStateRow:
    state: str
    updated_at_ts_ms: int


@dataclass(frozen=True, slots=True)
class TimelineRow:
    """One entry of a position's post-mortem timeline.

    ``kind`` is ``transition``, ``order``, ``fill``, ``funding`` or ``event``; ``data`` is the
    stored row as a dict (Decimals as the exact strings stored). Rows are ordered by ``ts_ms``
    and then by ``seq``, the global order in which rows were recorded.
    """

    ts_ms: int
    seq: int
    kind: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PositionTotals:
    """Money that has actually moved for one position.

    ``price_pnl_usd`` is sell notional minus buy notional over all fills; it is a realized
    figure only when every venue's fills net to zero base (``is_flat``), otherwise it and
    ``realized_pnl_usd`` are None. ``realized_pnl_usd = price_pnl_usd + funding_usd - fees_usd``.
    Funding is + received; fees are + paid. Notionals count the base that moved (a spot buy's
    base-coin fee is in ``fees_usd``, not in ``bought_notional_usd``); ``released_dust_usd`` (in
    ``sold_notional_usd``) is the value of sub-lot spot coins a carry close left in the wallet.
    """

    position_id: str
    funding_usd: Decimal
    fees_usd: Decimal
    bought_notional_usd: Decimal
    sold_notional_usd: Decimal
    net_base_by_venue: dict[str, Decimal]
    is_flat: bool
    price_pnl_usd: Decimal | None
    realized_pnl_usd: Decimal | None
    fill_count: int
    funding_count: int
    released_dust_usd: Decimal = Decimal(0)
