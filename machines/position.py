"""The position machine: one delta-neutral pair (long leg on one venue, short on another).

Synchronous and pure: triggers change the state and append a ``TransitionRecord`` to the outbox;
the async shell drains, persists and logs the records and sends the orders. Fill bookkeeping is
plain methods (``apply_leg_delta``, ``set_leg_base``), not triggers.

Invariant, enforced by construction: the model is never in MONITORING unless the legs are hedged
(|long - short| <= tolerance and both > 0). Every edge into MONITORING is guarded, a leg change
that breaks the hedge while MONITORING faults the position to ERROR on the spot, and ``restore``
refuses a MONITORING row whose legs are not hedged.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from enum import Enum
from typing import Any, ClassVar

from bot.core.domain import LegSide
from machines.base import FsmModel, build_machine
from machines.errors import UpdateRefused

ZERO = Decimal(0)


class PositionState(str, Enum):
    SCANNING = "scanning"  # candidate chosen, pre-flight checks; nothing sent
    OPENING = "opening"  # both entry legs in flight
    # Maker-taker entry: one leg rests as a post-only maker order; each of its fills is hedged at
    # once by a taker IOC on the other leg, so the legs may differ for the length of one hedge.
    RESTING = "resting"
    MONITORING = "monitoring"  # hedged, accruing funding
    CLOSING = "closing"  # reduce-only exit legs in flight
    CLOSED = "closed"  # terminal: flat (or never opened)
    ERROR = "error"  # leg mismatch or unexpected venue state found; awaiting repair
    RECOVERING = "recovering"  # automatic repair: complete the hedge or unwind


S = PositionState

# Guards are names of boolean properties on PositionFsm. Rows sharing a trigger and source are
# tried in order; the first whose guards pass wins. If none passes, TransitionRefused is raised.
TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "begin_open", "source": S.SCANNING, "dest": S.OPENING},
    # Maker-taker entry: the maker leg's order rests; nothing is filled yet.
    {"trigger": "begin_rest", "source": S.SCANNING, "dest": S.RESTING},
    # Pre-flight failed; only legal while flat, so it can never forget exposure.
    {"trigger": "abandon", "source": S.SCANNING, "dest": S.CLOSED, "conditions": "is_flat"},
    {
        "trigger": "legs_settled",
        "source": S.OPENING,
        "dest": S.MONITORING,
        "conditions": "is_full_and_hedged",
    },
    # Both legs rejected or filled nothing: the entry failed cleanly, there is nothing to repair.
    {"trigger": "legs_settled", "source": S.OPENING, "dest": S.CLOSED, "conditions": "is_flat"},
    # Catch-all (no guard): one-sided, partial or unequal fills go to repair.
    {"trigger": "legs_settled", "source": S.OPENING, "dest": S.RECOVERING},
    # The maker order is terminal (filled, cancelled after the timeout, or rejected) and every fill
    # it had is hedged: hold what was hedged (a partial maker fill is a smaller position, its target
    # set to the hedged size first by ``accept_hedged_size``).
    {"trigger": "legs_settled", "source": S.RESTING, "dest": S.MONITORING, "conditions": "is_full_and_hedged"},
    # Nothing filled before the timeout (or the post-only order was rejected): a clean no-entry.
    {"trigger": "legs_settled", "source": S.RESTING, "dest": S.CLOSED, "conditions": "is_flat"},
    # A hedge fell short (no liquidity within the slippage cap, rejected, venue down): repair.
    {"trigger": "legs_settled", "source": S.RESTING, "dest": S.RECOVERING},
    {"trigger": "recovered", "source": S.RECOVERING, "dest": S.MONITORING, "conditions": "is_hedged"},
    # Repair unwound everything.
    {"trigger": "recovered", "source": S.RECOVERING, "dest": S.CLOSED, "conditions": "is_flat"},
    {"trigger": "start_close", "source": S.MONITORING, "dest": S.CLOSING},
    # Repair decided to unwind both legs rather than complete the hedge.
    {"trigger": "start_close", "source": S.RECOVERING, "dest": S.CLOSING},
    {"trigger": "closed_flat", "source": S.CLOSING, "dest": S.CLOSED, "conditions": "is_flat"},
    # The close left residual or unequal exposure; guarded so a flat position cannot loop back.
    {"trigger": "close_incomplete", "source": S.CLOSING, "dest": S.RECOVERING, "unless": "is_flat"},
    # Reconciliation found a leg mismatch or unexpected venue state. Not from SCANNING (nothing was
    # sent) nor CLOSED (terminal).
    {
        "trigger": "fault",
        "source": [S.OPENING, S.RESTING, S.MONITORING, S.CLOSING, S.RECOVERING],
        "dest": S.ERROR,
    },
    {"trigger": "recover", "source": S.ERROR, "dest": S.RECOVERING},
]

TERMINAL_STATES: frozenset[PositionState] = frozenset({S.CLOSED})

_MACHINE = build_machine(name="position", states=PositionState, transitions=TRANSITIONS, initial=S.SCANNING)


# Models built in advance (``PositionFsm.prepare_spare``): joining the shared machine binds every
# trigger to the model (~0.2 ms), which ``PositionFsm.new`` keeps off an entry's path.
_SPARES: list[PositionFsm] = []
MAX_SPARES = 2


def _require_decimal(name: str, value: object) -> Decimal:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise TypeError(f"{name} must be a finite Decimal, got {value!r}")
    return value


class PositionFsm(FsmModel):
    """State and leg bookkeeping of one position.

    Triggers (bound by ``transitions``; keyword-only, return ``True`` or raise):
    ``begin_open``, ``begin_rest``, ``abandon``, ``legs_settled``, ``recovered``, ``start_close``, ``closed_flat``,
    ``close_incomplete``, ``fault``, ``recover`` — each ``(*, reason: str, details: Mapping | None)``.
    ``may_<trigger>()`` answers whether a trigger would succeed now, without side effects.
    """

    entity: ClassVar[str] = "position"
    terminal_states: ClassVar[frozenset[Enum]] = TERMINAL_STATES  # type: ignore[assignment]
    reserved_detail_keys: ClassVar[frozenset[str]] = frozenset(
        {"target_size_base", "long_filled_base", "short_filled_base"}
    )
    _machine = _MACHINE
    _states = PositionState

    state: PositionState
    begin_open: Callable[..., bool]
    begin_rest: Callable[..., bool]
    abandon: Callable[..., bool]
    legs_settled: Callable[..., bool]
    recovered: Callable[..., bool]
    start_close: Callable[..., bool]
    closed_flat: Callable[..., bool]
    close_incomplete: Callable[..., bool]
    fault: Callable[..., bool]
    recover: Callable[..., bool]

    def __init__(
        self,
        *,
        position_id: str,
        symbol: str,
        long_venue: str,
        short_venue: str,
        target_size_base: Decimal,
        tolerance_base: Decimal,
    ) -> None:
        """A new position in SCANNING with both legs flat."""
        self._set_fields(
            position_id=position_id,
            symbol=symbol,
            long_venue=long_venue,
            short_venue=short_venue,
            target_size_base=target_size_base,
            tolerance_base=tolerance_base,
            long_filled_base=ZERO,
            short_filled_base=ZERO,
            exit_reason=None,
        )
        self._attach(S.SCANNING)

    @classmethod
    def new(
        cls,
        *,
        position_id: str,
        symbol: str,
        long_venue: str,
        short_venue: str,
        target_size_base: Decimal,
        tolerance_base: Decimal,
    ) -> PositionFsm:
        """Exactly ``PositionFsm(...)`` (SCANNING, legs flat, outbox empty), from a spare model
        already joined to the machine when one was prepared (``prepare_spare``)."""
        if not _SPARES:
            return cls(position_id=position_id, symbol=symbol, long_venue=long_venue, short_venue=short_venue,
                       target_size_base=target_size_base, tolerance_base=tolerance_base)
        model = _SPARES.pop()
        try:
            model._set_fields(position_id=position_id, symbol=symbol, long_venue=long_venue,
                              short_venue=short_venue, target_size_base=target_size_base,
                              tolerance_base=tolerance_base, long_filled_base=ZERO, short_filled_base=ZERO,
                              exit_reason=None)
        except BaseException:
            _SPARES.append(model)  # nothing was set: still a blank spare
            raise
        return model

    @classmethod
    def prepare_spare(cls) -> None:
        """Build one blank model in SCANNING, joined to the machine, for the next ``new`` (at most
        ``MAX_SPARES`` wait; call it off the latency-critical path)."""
        if len(_SPARES) < MAX_SPARES:
            model = cls.__new__(cls)
            model._attach(S.SCANNING)
            _SPARES.append(model)

    @classmethod
    def restore(
        cls,
        state: PositionState | str,
        *,
        position_id: str,
        symbol: str,
        long_venue: str,
        short_venue: str,
        target_size_base: Decimal,
        tolerance_base: Decimal,
        long_filled_base: Decimal,
        short_filled_base: Decimal,
        exit_reason: str | None = None,
    ) -> PositionFsm:
        """Recreate a stored position in its stored state without firing callbacks (outbox empty).

        Raises ``ValueError`` for rows that break the invariants: MONITORING with unhedged legs,
        CLOSED with exposure. (Restore such a row as ERROR and record why.)
        """
        restored_state = PositionState(state)
        model = cls.__new__(cls)
        model._set_fields(
            position_id=position_id,
            symbol=symbol,
            long_venue=long_venue,
            short_venue=short_venue,
            target_size_base=target_size_base,
            tolerance_base=tolerance_base,
            long_filled_base=long_filled_base,
            short_filled_base=short_filled_base,
            exit_reason=exit_reason,
        )
        if restored_state is S.MONITORING and not model.is_hedged:
            raise ValueError(
                f"position {position_id}: cannot restore MONITORING with unhedged legs "
                f"({model.describe_facts()})"
            )
        if restored_state is S.CLOSED and not model.is_flat:
            raise ValueError(
                f"position {position_id}: cannot restore CLOSED with open legs ({model.describe_facts()})"
            )
        model._attach(restored_state)
        # A restored terminal position has nothing left to do; keep it out of the machine.
        if restored_state in TERMINAL_STATES:
            model.detach()
        return model

    def _set_fields(
        self,
        *,
        position_id: str,
        symbol: str,
        long_venue: str,
        short_venue: str,
        target_size_base: Decimal,
        tolerance_base: Decimal,
        long_filled_base: Decimal,
        short_filled_base: Decimal,
        exit_reason: str | None,
    ) -> None:
        if not position_id or not symbol:
            raise ValueError("position_id and symbol must be non-empty")
        if not long_venue or not short_venue or long_venue == short_venue:
            raise ValueError(
                f"long and short venues must be two different venues, got {long_venue!r}/{short_venue!r}"
            )
        target = _require_decimal("target_size_base", target_size_base)
        tolerance = _require_decimal("tolerance_base", tolerance_base)
        if target <= ZERO:
            raise ValueError(f"target_size_base must be > 0, got {target}")
        if not ZERO <= tolerance < target:
            raise ValueError(f"tolerance_base must be in [0, target_size_base), got {tolerance}")
        for name, leg in (("long_filled_base", long_filled_base), ("short_filled_base", short_filled_base)):
            if _require_decimal(name, leg) < ZERO:
                raise ValueError(f"{name} must be >= 0, got {leg}")
        self.position_id = position_id
        self.symbol = symbol
        self.long_venue = long_venue
        self.short_venue = short_venue
        self.target_size_base = target
        self.tolerance_base = tolerance
        self.long_filled_base = long_filled_base
        self.short_filled_base = short_filled_base
        self.exit_reason = exit_reason

    def __repr__(self) -> str:
        return f"PositionFsm({self.position_id!r}, {self.state.value}, {self.describe_facts()})"

    @property
    def entity_id(self) -> str:
        return self.position_id

    # --- facts (also the guards named in TRANSITIONS) ---

    @property
    def net_exposure_base(self) -> Decimal:
        """Long minus short: positive means net long."""
        return self.long_filled_base - self.short_filled_base

    @property
    def is_flat(self) -> bool:
        """Both legs exactly zero (fills are whole lots, so exact zero is always reachable)."""
        return self.long_filled_base == ZERO and self.short_filled_base == ZERO

    @property
    def is_hedged(self) -> bool:
        """Both legs open and equal within tolerance."""
        return (
            min(self.long_filled_base, self.short_filled_base) > ZERO
            and abs(self.net_exposure_base) <= self.tolerance_base
        )

    @property
    def is_full_and_hedged(self) -> bool:
        """Hedged and each leg equals the target within tolerance."""
        tolerance = self.tolerance_base
        return (
            self.is_hedged
            and abs(self.long_filled_base - self.target_size_base) <= tolerance
            and abs(self.short_filled_base - self.target_size_base) <= tolerance
        )

    def leg_base(self, leg: LegSide) -> Decimal:
        """Absolute open size of one leg."""
        return self.long_filled_base if leg is LegSide.LONG else self.short_filled_base

    # --- bookkeeping (plain methods, not triggers) ---

    def apply_leg_delta(self, leg: LegSide, delta_base: Decimal) -> None:
        """Add a fill to a leg: positive opens more, negative reduces.

        Raises ``UpdateRefused`` (nothing changed) in CLOSED or if the leg would go negative.
        In MONITORING, a change that leaves the legs unhedged fires ``fault`` immediately.
        """
        delta = _require_decimal("delta_base", delta_base)
        self._set_leg(leg, self.leg_base(leg) + delta, {"leg": leg.value, "delta_base": delta})

    def set_leg_base(self, leg: LegSide, size_base: Decimal) -> None:
        """Overwrite a leg with the venue's own position size (reconciliation). Same rules as
        ``apply_leg_delta``."""
        size = _require_decimal("size_base", size_base)
        self._set_leg(leg, size, {"leg": leg.value, "venue_size_base": size})

    def accept_hedged_size(self) -> Decimal:
        """In RECOVERING or RESTING with hedged legs, make the hedged size (the smaller leg) the new target.

        Used when repair keeps a partial hedge instead of completing the original size, and when a
        maker order ends partially filled (every fill hedged). Returns the new target; raises
        ``UpdateRefused`` otherwise.
        """
        if self.state not in (S.RECOVERING, S.RESTING) or not self.is_hedged:
            raise UpdateRefused(
                f"position {self.position_id}: accept_hedged_size needs RECOVERING or RESTING with hedged legs, "
                f"state {self.state.value!r}, {self.describe_facts()}"
            )
        self.target_size_base = min(self.long_filled_base, self.short_filled_base)
        return self.target_size_base

    def _set_leg(self, leg: LegSide, new_size: Decimal, details: dict[str, Any]) -> None:
        if self.state in TERMINAL_STATES or not self.is_attached:
            raise UpdateRefused(
                f"position {self.position_id}: leg update refused in state {self.state.value!r} "
                f"(attached={self.is_attached})"
            )
        if new_size < ZERO:
            raise UpdateRefused(
                f"position {self.position_id}: {leg.value} leg would go negative "
                f"({self.leg_base(leg)} -> {new_size}); reconcile against the venue"
            )
        if leg is LegSide.LONG:
            self.long_filled_base = new_size
        else:
            self.short_filled_base = new_size
        if self.state is S.MONITORING and not self.is_hedged:
            self.fault(reason="leg mismatch while monitoring", details=details)

    # --- machine hooks ---

    def _snapshot(self) -> dict[str, Any]:
        return {
            "target_size_base": self.target_size_base,
            "long_filled_base": self.long_filled_base,
            "short_filled_base": self.short_filled_base,
        }

    def _on_transition(self, source: Enum, dest: Enum, trigger: str, reason: str) -> None:
        # The first reason to leave the open states is the exit reason; repair steps after it keep it.
        if dest in (S.CLOSING, S.CLOSED) and self.exit_reason is None:
            self.exit_reason = reason
