"""The trading-state gate that sits in front of every order.

Decision table (``gate_order``), first matching row wins:

=========  ================================================================================
state      allowed intents
=========  ================================================================================
any        CANCEL (cancelling a resting order never adds exposure)
ACTIVE     everything
REDUCING   intents with ``reduces_exposure``; never OPEN
HALTED     emergency intents with ``reduces_exposure``; never OPEN.  FLATTEN always counts as
           an emergency: it is an operator command (signal or manual flatten), reduce-only.
=========  ================================================================================

REPAIR (completing the hedge by buying/selling the missing quantity on the lagging leg) raises
GROSS exposure but lowers NET (delta) exposure, which is what loses money when price moves.
Decision: a repair that completes a hedge has ``reduces_exposure=True``, so REDUCING allows it
(leaving a naked leg open is the larger risk). Under HALTED it is denied unless ``emergency``;
the engine marks repairs of a naked leg as emergency, so they still go through when halted,
while a halted bot never starts discretionary repairs. An UNWIND of the excess leg is the
alternative repair and reduces both gross and net exposure.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class TradingState(StrEnum):
    """How much the bot may trade right now, from most to least permissive."""

    ACTIVE = "active"  # entries and exits
    REDUCING = "reducing"  # only orders that reduce exposure (exits, unwinds, hedge repairs)
    HALTED = "halted"  # only cancels and emergency exposure-reducing orders

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


def most_restrictive(*states: TradingState) -> TradingState:
    """The most restrictive of ``states`` (ACTIVE when none are given)."""
    return max(states, key=lambda s: s.severity, default=TradingState.ACTIVE)


class IntentKind(StrEnum):
    """Why an order is being sent."""

    OPEN = "open"  # a new position's entry leg
    CLOSE = "close"  # a reduce-only exit leg
    REPAIR = "repair"  # complete the missing quantity on the lagging leg of a hedge
    UNWIND = "unwind"  # reduce-only removal of the excess quantity of a half-filled hedge
    FLATTEN = "flatten"  # reduce-only close commanded by the operator (signal, manual flatten)
    CANCEL = "cancel"  # cancel a resting order


_DEFAULT_REDUCES = {
    IntentKind.OPEN: False,
    IntentKind.CLOSE: True,
    IntentKind.REPAIR: True,
    IntentKind.UNWIND: True,
    IntentKind.FLATTEN: True,
    IntentKind.CANCEL: True,
}


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """What an order is for, as the gate needs to know it.

    ``reduces_exposure``: the order cannot increase any position's absolute NET base exposure
    and lowers gross exposure (close/unwind/flatten, reduce-only) or net exposure (a repair
    completing a hedge). ``emergency``: the order answers an emergency exit, a naked leg, or an
    operator command and must go through even when HALTED.
    """

    kind: IntentKind
    reduces_exposure: bool
    emergency: bool = False

    def __post_init__(self) -> None:
        if self.kind is IntentKind.OPEN and self.reduces_exposure:
            raise ValueError("an OPEN intent never reduces exposure")

    @classmethod
    def for_kind(cls, kind: IntentKind, *, emergency: bool = False) -> "OrderIntent":
        """An intent with the usual ``reduces_exposure`` for ``kind`` (False only for OPEN)."""
        return cls(kind=kind, reduces_exposure=_DEFAULT_REDUCES[kind], emergency=emergency)


class GateReason(StrEnum):
    CANCEL_ALLOWED = "cancel_allowed"
    ACTIVE = "active"
    REDUCING_ALLOWS_REDUCE = "reducing_allows_reduce"
    REDUCING_DENIES_OPEN = "reducing_denies_open"
    REDUCING_DENIES_NON_REDUCING = "reducing_denies_non_reducing"
    HALTED_ALLOWS_EMERGENCY_REDUCE = "halted_allows_emergency_reduce"
    HALTED_DENIES = "halted_denies"


@dataclass(frozen=True, slots=True)
class GateDecision:
    allowed: bool
    reason: GateReason


def gate_order(state: TradingState, intent: OrderIntent) -> GateDecision:
    """May an order with ``intent`` be sent in ``state``? See the module docstring for the table."""
    if intent.kind is IntentKind.CANCEL:
        return GateDecision(True, GateReason.CANCEL_ALLOWED)
    if state is TradingState.ACTIVE:
        return GateDecision(True, GateReason.ACTIVE)
    if intent.kind is IntentKind.OPEN:
        if state is TradingState.REDUCING:
            return GateDecision(False, GateReason.REDUCING_DENIES_OPEN)
        return GateDecision(False, GateReason.HALTED_DENIES)
    if state is TradingState.REDUCING:
        if intent.reduces_exposure:
            return GateDecision(True, GateReason.REDUCING_ALLOWS_REDUCE)
        return GateDecision(False, GateReason.REDUCING_DENIES_NON_REDUCING)
    emergency = intent.emergency or intent.kind is IntentKind.FLATTEN
    if emergency and intent.reduces_exposure:
        return GateDecision(True, GateReason.HALTED_ALLOWS_EMERGENCY_REDUCE)
    return GateDecision(False, GateReason.HALTED_DENIES)
