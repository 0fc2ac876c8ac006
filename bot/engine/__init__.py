"""The trading engine: carries out opens, repairs, closes and reconciliation against an Executor.

It is the async shell around the position machines. The money-safety protocol (README, "Money-safety protocol"):

* Entry (``entry``): the position row and both order intents (deterministic client order ids) are
  persisted in one transaction BEFORE any order is sent; both legs are then dispatched concurrently
  as IOC limit orders bounded by the slippage cap. Both filled -> ``monitoring``; else ``recovering``.
* Maker-taker entry (``maker``, ``strategy.execution = "maker_taker"``): the position row and the
  maker order's intent are persisted first; the maker leg rests as a post-only limit order
  (position state ``resting``); each of its fills, full or partial, is hedged at once by a taker IOC
  on the other leg (bounded by the slippage cap); the rest is cancelled after the timeout.
* Repair (``repair``): complete the lagging leg with widening IOC attempts; if that fails, unwind
  the excess reduce-only. A position whose exit had begun is repaired towards flat instead.
* Exit (``exit``): both legs closed concurrently with reduce-only orders, then flatness is verified
  against the venue's own positions before ``closed``.
* An order whose outcome is unknown (timeout, venue down) is looked up by client order id
  (``orders``); while it stays unknown the position cannot be declared hedged or flat by us:
  reconciliation (``reconcile``) settles it. A restart reloads through ``restore``.

The unhedged window (wall time during which a position's net base exposure exceeded tolerance) is
measured for every entry and exit and reported to breakers via ``on_unhedged_window``.
"""

from bot.engine.core import (
    FLATTEN_ATTEMPTS,
    UNKNOWN_STATUS,
    BookLookup,
    EngineConfig,
    EngineMetrics,
    InstrumentLookup,
    OrderGate,
    OrderMeta,
    ReconcileFinding,
)
from bot.engine.entry import EntryMixin
from bot.engine.exit import ExitMixin
from bot.engine.maker import MakerTakerMixin
from bot.engine.orders import OrderFlowMixin
from bot.engine.reconcile import ReconcileMixin
from bot.engine.repair import RepairMixin
from bot.engine.restore import RestoreMixin
from bot.engine.spot import SpotMixin, SpotUnavailable

__all__ = [
    "FLATTEN_ATTEMPTS", "UNKNOWN_STATUS", "BookLookup", "EngineConfig", "EngineMetrics", "InstrumentLookup",
    "OrderGate", "OrderMeta", "ReconcileFinding", "SpotMixin", "SpotUnavailable", "TradingEngine",
]


class TradingEngine(EntryMixin, MakerTakerMixin, RepairMixin, ExitMixin, ReconcileMixin, RestoreMixin, SpotMixin,
                    OrderFlowMixin):
    """Owns the position machines and drives them through the executor and the store."""
