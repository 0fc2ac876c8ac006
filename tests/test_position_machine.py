"""Position machine: the literal table, guards, bookkeeping, restore and a random-walk engine."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from transitions.core import MachineError

from bot.core.domain import LegSide
from machines.errors import InvalidTransition, TransitionRefused, UpdateRefused
from machines.position import _MACHINE, TRANSITIONS, PositionFsm, PositionState
from machines.records import TransitionRecord

S = PositionState
D = Decimal
TARGET = D("1.000")
TOL = D("0.001")

# The table written out by hand: (source, trigger) -> destinations in guard order.
EXPECTED_EDGES: dict[tuple[PositionState, str], list[PositionState]] = {
    (S.SCANNING, "begin_open"): [S.OPENING],
    (S.SCANNING, "abandon"): [S.CLOSED],
    (S.OPENING, "legs_settled"): [S.MONITORING, S.CLOSED, S.RECOVERING],
    (S.SCANNING, "begin_rest"): [S.RESTING],
    (S.RESTING, "legs_settled"): [S.MONITORING, S.CLOSED, S.RECOVERING],
    (S.RESTING, "fault"): [S.ERROR],
    (S.RECOVERING, "recovered"): [S.MONITORING, S.CLOSED],
    (S.MONITORING, "start_close"): [S.CLOSING],
    (S.RECOVERING, "start_close"): [S.CLOSING],
    (S.CLOSING, "closed_flat"): [S.CLOSED],
    (S.CLOSING, "close_incomplete"): [S.RECOVERING],
    (S.OPENING, "fault"): [S.ERROR],
    (S.MONITORING, "fault"): [S.ERROR],
    (S.CLOSING, "fault"): [S.ERROR],
    (S.RECOVERING, "fault"): [S.ERROR],
    (S.ERROR, "recover"): [S.RECOVERING],
}
TRIGGERS = sorted({trigger for _, trigger in EXPECTED_EDGES})

# Leg sizes (long, short) that are legal to restore in each state.
RESTORE_LEGS = {
    S.SCANNING: (D(0), D(0)),
    S.OPENING: (D("0.4"), D(0)),
    S.RESTING: (D("0.4"), D("0.3")),
    S.MONITORING: (TARGET, TARGET),
    S.CLOSING: (TARGET, D("0.5")),
    S.CLOSED: (D(0), D(0)),
    S.ERROR: (TARGET, D("0.5")),
    S.RECOVERING: (TARGET, D(0)),
}


def make(state: PositionState, long_base: Decimal, short_base: Decimal, **overrides: object) -> PositionFsm:
    fields: dict[str, object] = dict(
        position_id="pos-1",
        symbol="BTCUSDT",
        long_venue="bybit",
        short_venue="binance",
        target_size_base=TARGET,
        tolerance_base=TOL,
        long_filled_base=long_base,
        short_filled_base=short_base,
    )
    fields.update(overrides)
    return PositionFsm.restore(state, **fields)  # type: ignore[arg-type]


def fresh() -> PositionFsm:
    return PositionFsm(
        position_id="pos-1",
        symbol="BTCUSDT",
        long_venue="bybit",
        short_venue="binance",
        target_size_base=TARGET,
        tolerance_base=TOL,
    )


def table_edges() -> dict[tuple[PositionState, str], list[PositionState]]:
    edges: dict[tuple[PositionState, str], list[PositionState]] = {}
    for row in TRANSITIONS:
        sources = row["source"] if isinstance(row["source"], list) else [row["source"]]
        for source in sources:
            edges.setdefault((source, row["trigger"]), []).append(row["dest"])
    return edges


def test_table_matches_hand_written_expectation() -> None:
    assert table_edges() == EXPECTED_EDGES


def test_new_position_starts_scanning_flat_with_empty_outbox() -> None:
    fsm = fresh()
    assert fsm.state is S.SCANNING
    assert fsm.is_flat and not fsm.is_hedged
    assert fsm.net_exposure_base == 0
    assert fsm.drain_transitions() == []
    fsm.detach()


INVALID_PAIRS = [
    (state, trigger) for state in S for trigger in TRIGGERS if (state, trigger) not in EXPECTED_EDGES
]
INVALID_IDS = [f"{state.value}-{trigger}" for state, trigger in INVALID_PAIRS]


def test_invalid_pairs_enumerated() -> None:
    # 8 states x 10 triggers = 80 pairs, 16 legal.
    assert len(INVALID_PAIRS) == 80 - 16


@pytest.mark.parametrize(("state", "trigger"), INVALID_PAIRS, ids=INVALID_IDS)
def test_every_pair_outside_the_table_raises(state: PositionState, trigger: str) -> None:
    long_base, short_base = RESTORE_LEGS[state]
    fsm = make(state, long_base, short_base)
    if state is S.CLOSED:
        assert not fsm.is_attached  # restored terminal models are detached; the trigger must still raise
    with pytest.raises(InvalidTransition) as excinfo:
        getattr(fsm, trigger)(reason="test")
    err = excinfo.value
    assert isinstance(err, MachineError)
    assert err.state is state and err.trigger == trigger and err.entity_id == "pos-1"
    assert repr(state.value) in str(err) and repr(trigger) in str(err)
    assert fsm.state is state
    assert (fsm.long_filled_base, fsm.short_filled_base) == (long_base, short_base)
    assert fsm.drain_transitions() == []
    fsm.detach()


# (source, trigger, long, short, expected dest): at least one case per (source, trigger, dest).
LEGAL_CASES = [
    (S.SCANNING, "begin_open", D(0), D(0), S.OPENING),
    (S.SCANNING, "abandon", D(0), D(0), S.CLOSED),
    (S.OPENING, "legs_settled", TARGET, TARGET, S.MONITORING),
    # each leg within tolerance of the target and of each other: 0.999 vs 1.000
    (S.OPENING, "legs_settled", D("0.999"), TARGET, S.MONITORING),
    (S.OPENING, "legs_settled", D(0), D(0), S.CLOSED),
    (S.OPENING, "legs_settled", TARGET, D(0), S.RECOVERING),
    (S.OPENING, "legs_settled", D("0.5"), D("0.5"), S.RECOVERING),  # hedged but not full
    # each leg within 0.001 of target but 0.002 apart: not hedged
    (S.OPENING, "legs_settled", D("1.001"), D("0.999"), S.RECOVERING),
    (S.RECOVERING, "recovered", D("0.5"), D("0.5"), S.MONITORING),
    (S.RECOVERING, "recovered", D("0.500"), D("0.501"), S.MONITORING),
    (S.RECOVERING, "recovered", D(0), D(0), S.CLOSED),
    (S.MONITORING, "start_close", TARGET, TARGET, S.CLOSING),
    (S.RECOVERING, "start_close", TARGET, D("0.3"), S.CLOSING),
    (S.CLOSING, "closed_flat", D(0), D(0), S.CLOSED),
    (S.CLOSING, "close_incomplete", D("0.2"), D(0), S.RECOVERING),
    (S.CLOSING, "close_incomplete", D("0.2"), D("0.2"), S.RECOVERING),
    (S.OPENING, "fault", D("0.4"), D(0), S.ERROR),
    (S.MONITORING, "fault", TARGET, TARGET, S.ERROR),
    (S.CLOSING, "fault", D("0.2"), D(0), S.ERROR),
    (S.RECOVERING, "fault", TARGET, D(0), S.ERROR),
    (S.ERROR, "recover", TARGET, D(0), S.RECOVERING),
    (S.SCANNING, "begin_rest", D(0), D(0), S.RESTING),
    (S.RESTING, "legs_settled", TARGET, TARGET, S.MONITORING),
    (S.RESTING, "legs_settled", D(0), D(0), S.CLOSED),  # the maker order timed out unfilled
    (S.RESTING, "legs_settled", D("0.4"), D("0.3"), S.RECOVERING),  # a hedge fell short
    (S.RESTING, "legs_settled", D("0.5"), D("0.5"), S.RECOVERING),  # partial, target not yet accepted
    (S.RESTING, "fault", D("0.4"), D("0.3"), S.ERROR),
]


def test_legal_cases_cover_every_edge() -> None:
    covered = {(source, trigger, dest) for source, trigger, _, _, dest in LEGAL_CASES}
    expected = {
        (source, trigger, dest) for (source, trigger), dests in EXPECTED_EDGES.items() for dest in dests
    }
    assert covered == expected


@pytest.mark.parametrize(("source", "trigger", "long_base", "short_base", "dest"), LEGAL_CASES)
def test_legal_edge_moves_and_records(
    source: PositionState, trigger: str, long_base: Decimal, short_base: Decimal, dest: PositionState
) -> None:
    fsm = make(source, long_base, short_base)
    assert getattr(fsm, trigger)(reason="because", details={"order_id": "c-1"}) is True
    assert fsm.state is dest
    records = fsm.drain_transitions()
    assert records == [
        TransitionRecord(
            entity="position",
            entity_id="pos-1",
            source=source.value,
            dest=dest.value,
            trigger=trigger,
            reason="because",
            details={
                "order_id": "c-1",
                "target_size_base": TARGET,
                "long_filled_base": long_base,
                "short_filled_base": short_base,
            },
            ts_ms=None,
        )
    ]
    assert fsm.drain_transitions() == []
    assert fsm.is_attached is (dest is not S.CLOSED)
    assert fsm.is_terminal is (dest is S.CLOSED)
    fsm.detach()


# Legal (state, trigger) pairs whose every guard fails.
REFUSED_CASES = [
    (S.SCANNING, "abandon", D(0), D("0.1")),  # cannot abandon with exposure
    (S.RECOVERING, "recovered", TARGET, D(0)),
    (S.RECOVERING, "recovered", TARGET, D("0.998")),  # 0.002 apart, tolerance 0.001
    (S.RECOVERING, "recovered", D("0.001"), D(0)),  # within tolerance but one leg is empty
    (S.CLOSING, "closed_flat", D("0.001"), D(0)),
    (S.CLOSING, "close_incomplete", D(0), D(0)),
]


@pytest.mark.parametrize(("state", "trigger", "long_base", "short_base"), REFUSED_CASES)
def test_failed_guards_raise_transition_refused(
    state: PositionState, trigger: str, long_base: Decimal, short_base: Decimal
) -> None:
    fsm = make(state, long_base, short_base)
    assert getattr(fsm, f"may_{trigger}")() is False
    with pytest.raises(TransitionRefused) as excinfo:
        getattr(fsm, trigger)(reason="test")
    assert excinfo.value.state is state and excinfo.value.trigger == trigger
    assert f"long_filled_base={long_base}" in str(excinfo.value)
    assert fsm.state is state
    assert fsm.drain_transitions() == []
    fsm.detach()


def test_trigger_arguments_are_validated_before_anything_changes() -> None:
    fsm = fresh()
    with pytest.raises(TypeError, match="keyword arguments only"):
        fsm.begin_open("positional")
    with pytest.raises(TypeError, match="reason"):
        fsm.begin_open()
    with pytest.raises(TypeError, match="reason"):
        fsm.begin_open(reason="  ")
    with pytest.raises(TypeError, match="unexpected"):
        fsm.begin_open(reason="x", size=1)
    with pytest.raises(TypeError, match="mapping"):
        fsm.begin_open(reason="x", details=["a"])
    with pytest.raises(ValueError, match="reserved"):
        fsm.begin_open(reason="x", details={"long_filled_base": D(1)})
    assert fsm.state is S.SCANNING and fsm.drain_transitions() == []
    fsm.detach()


def test_record_details_are_a_copy_of_the_callers_mapping() -> None:
    fsm = fresh()
    details = {"client_order_id": "a"}
    fsm.begin_open(reason="entry", details=details)
    details["client_order_id"] = "changed"
    (record,) = fsm.drain_transitions()
    assert record.details["client_order_id"] == "a"
    assert record.stamped(1_700_000_000_000).ts_ms == 1_700_000_000_000
    assert record.ts_ms is None
    fsm.detach()


def test_full_lifecycle_records_a_chain() -> None:
    fsm = fresh()
    fsm.begin_open(reason="entry")
    fsm.apply_leg_delta(LegSide.LONG, D("0.6"))
    fsm.apply_leg_delta(LegSide.SHORT, D("1.0"))
    fsm.apply_leg_delta(LegSide.LONG, D("0.4"))
    fsm.legs_settled(reason="both filled")
    fsm.start_close(reason="funding flipped")
    fsm.apply_leg_delta(LegSide.LONG, D("-1.0"))
    fsm.apply_leg_delta(LegSide.SHORT, D("-1.0"))
    fsm.closed_flat(reason="verified flat")
    records = fsm.drain_transitions()
    assert [(r.source, r.dest, r.trigger) for r in records] == [
        ("scanning", "opening", "begin_open"),
        ("opening", "monitoring", "legs_settled"),
        ("monitoring", "closing", "start_close"),
        ("closing", "closed", "closed_flat"),
    ]
    assert fsm.exit_reason == "funding flipped"
    assert fsm.state is S.CLOSED and not fsm.is_attached
    assert fsm not in _MACHINE.models


def test_exit_reason_is_the_first_reason_and_survives_repair() -> None:
    fsm = make(S.MONITORING, TARGET, TARGET)
    fsm.start_close(reason="spread collapsed")
    fsm.apply_leg_delta(LegSide.LONG, D("-1.000"))
    fsm.apply_leg_delta(LegSide.SHORT, D("-0.700"))
    fsm.close_incomplete(reason="short leg partially filled")
    fsm.start_close(reason="unwind residual")
    fsm.apply_leg_delta(LegSide.SHORT, D("-0.300"))
    fsm.closed_flat(reason="flat")
    assert fsm.exit_reason == "spread collapsed"


def test_abandon_sets_exit_reason() -> None:
    fsm = fresh()
    fsm.abandon(reason="book too thin")
    assert fsm.exit_reason == "book too thin" and fsm.state is S.CLOSED


def test_one_sided_entry_completed_by_repair() -> None:
    fsm = fresh()
    fsm.begin_open(reason="entry")
    fsm.apply_leg_delta(LegSide.LONG, TARGET)
    fsm.apply_leg_delta(LegSide.SHORT, D(0))  # rejected
    fsm.legs_settled(reason="short rejected")
    assert fsm.state is S.RECOVERING
    assert fsm.net_exposure_base == D("1.000")
    fsm.apply_leg_delta(LegSide.SHORT, D("0.400"))
    assert not fsm.may_recovered()
    fsm.apply_leg_delta(LegSide.SHORT, D("0.600"))
    fsm.recovered(reason="hedge completed")
    assert fsm.state is S.MONITORING and fsm.target_size_base == TARGET
    fsm.detach()


def test_accept_hedged_size_lowers_the_target() -> None:
    fsm = make(S.RECOVERING, D("0.600"), D("0.601"))
    assert fsm.accept_hedged_size() == D("0.600")
    assert fsm.target_size_base == D("0.600")
    fsm.recovered(reason="keep partial hedge")
    (record,) = fsm.drain_transitions()
    assert record.details["target_size_base"] == D("0.600")
    fsm.detach()


@pytest.mark.parametrize(
    ("state", "long_base", "short_base"),
    [(S.RECOVERING, TARGET, D("0.5")), (S.MONITORING, TARGET, TARGET), (S.CLOSING, D("0.5"), D("0.5"))],
)
def test_accept_hedged_size_refused_unless_recovering_and_hedged(
    state: PositionState, long_base: Decimal, short_base: Decimal
) -> None:
    fsm = make(state, long_base, short_base)
    with pytest.raises(UpdateRefused):
        fsm.accept_hedged_size()
    assert fsm.target_size_base == TARGET
    fsm.detach()


def test_leg_going_negative_is_refused_and_unchanged() -> None:
    fsm = make(S.CLOSING, D("0.5"), D("0.5"))
    with pytest.raises(UpdateRefused, match="negative"):
        fsm.apply_leg_delta(LegSide.SHORT, D("-0.501"))
    with pytest.raises(UpdateRefused, match="negative"):
        fsm.set_leg_base(LegSide.LONG, D("-1"))
    assert (fsm.long_filled_base, fsm.short_filled_base) == (D("0.5"), D("0.5"))
    fsm.detach()


def test_leg_updates_refused_when_closed_or_detached() -> None:
    closed = make(S.CLOSED, D(0), D(0))
    with pytest.raises(UpdateRefused):
        closed.apply_leg_delta(LegSide.LONG, D("0.1"))
    detached = make(S.MONITORING, TARGET, TARGET)
    detached.detach()
    with pytest.raises(UpdateRefused):
        detached.apply_leg_delta(LegSide.LONG, D("-0.5"))
    assert detached.state is S.MONITORING and detached.long_filled_base == TARGET


def test_float_amounts_are_rejected() -> None:
    fsm = make(S.OPENING, D(0), D(0))
    with pytest.raises(TypeError):
        fsm.apply_leg_delta(LegSide.LONG, 0.1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        fsm.apply_leg_delta(LegSide.LONG, D("NaN"))
    fsm.detach()


def test_unhedging_change_while_monitoring_faults_immediately() -> None:
    fsm = make(S.MONITORING, TARGET, TARGET)
    fsm.apply_leg_delta(LegSide.SHORT, D("-0.001"))  # 0.001 apart: still within tolerance
    assert fsm.state is S.MONITORING and fsm.drain_transitions() == []
    fsm.apply_leg_delta(LegSide.SHORT, D("-0.001"))  # now 0.002 apart
    assert fsm.state is S.ERROR
    (record,) = fsm.drain_transitions()
    assert (record.source, record.dest, record.trigger) == ("monitoring", "error", "fault")
    assert record.details["leg"] == "short" and record.details["delta_base"] == D("-0.001")
    assert record.details["short_filled_base"] == D("0.998")
    fsm.detach()


def test_reconciled_leg_size_mismatch_while_monitoring_faults() -> None:
    fsm = make(S.MONITORING, TARGET, TARGET)
    fsm.set_leg_base(LegSide.LONG, D(0))  # e.g. liquidated on the venue
    assert fsm.state is S.ERROR and fsm.long_filled_base == 0
    (record,) = fsm.drain_transitions()
    assert record.details["venue_size_base"] == D(0)
    fsm.detach()


def test_restore_fires_no_callbacks_and_keeps_fields() -> None:
    fsm = PositionFsm.restore(
        "closing",
        position_id="pos-9",
        symbol="ETHUSDT",
        long_venue="a",
        short_venue="b",
        target_size_base=D("2"),
        tolerance_base=D("0.01"),
        long_filled_base=D("1.5"),
        short_filled_base=D("2"),
        exit_reason="funding flipped",
    )
    assert fsm.state is S.CLOSING
    assert fsm.drain_transitions() == []
    assert (fsm.long_filled_base, fsm.short_filled_base) == (D("1.5"), D("2"))
    assert fsm.exit_reason == "funding flipped"
    assert fsm.net_exposure_base == D("-0.5")
    assert fsm in _MACHINE.models
    fsm.detach()
    assert fsm not in _MACHINE.models


@pytest.mark.parametrize(
    ("state", "long_base", "short_base"),
    [(S.MONITORING, TARGET, D("0.5")), (S.MONITORING, D(0), D(0)), (S.CLOSED, D("0.1"), D(0))],
)
def test_restore_refuses_rows_that_break_invariants(
    state: PositionState, long_base: Decimal, short_base: Decimal
) -> None:
    models_before = len(_MACHINE.models)
    with pytest.raises(ValueError, match="cannot restore"):
        make(state, long_base, short_base)
    assert len(_MACHINE.models) == models_before


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"tolerance_base": TARGET}, ValueError),
        ({"tolerance_base": D("-0.001")}, ValueError),
        ({"target_size_base": D(0)}, ValueError),
        ({"target_size_base": 1.0}, TypeError),
        ({"short_venue": "bybit"}, ValueError),
        ({"long_filled_base": D("-0.1")}, ValueError),
        ({"position_id": ""}, ValueError),
    ],
)
def test_constructor_validation(overrides: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        make(S.RECOVERING, TARGET, D(0), **overrides)


def test_closed_positions_do_not_leak_into_the_shared_machine() -> None:
    models_before = len(_MACHINE.models)
    for index in range(50):
        fsm = PositionFsm(
            position_id=f"p{index}",
            symbol="BTCUSDT",
            long_venue="a",
            short_venue="b",
            target_size_base=TARGET,
            tolerance_base=TOL,
        )
        fsm.begin_open(reason="entry")
        fsm.legs_settled(reason="both rejected")
        assert fsm.state is S.CLOSED
    assert len(_MACHINE.models) == models_before


# --- random walk: a simple engine policy over random fills, rejects, closes and faults ---

STEP = D("0.001")
MAX_COMPLETE_ATTEMPTS = 3
FAULTABLE = {S.OPENING, S.RESTING, S.MONITORING, S.CLOSING, S.RECOVERING}
legs = st.sampled_from(list(LegSide))
percents = st.integers(min_value=0, max_value=100)  # 0 = rejected / nothing filled


def portion(amount: Decimal, percent: int) -> Decimal:
    return (amount * percent / 100).quantize(STEP, rounding=ROUND_DOWN)


class PositionEngine(RuleBasedStateMachine):
    """Drives one position the way the engine would, with adversarial venue outcomes."""

    fsm: PositionFsm

    @initialize(target_lots=st.integers(min_value=1, max_value=3000), tolerance_lots=st.integers(0, 2))
    def create(self, target_lots: int, tolerance_lots: int) -> None:
        self._new_position(target_lots, tolerance_lots)

    def _new_position(self, target_lots: int, tolerance_lots: int) -> None:
        tolerance_lots = tolerance_lots if tolerance_lots < target_lots else 0
        self.fsm = PositionFsm(
            position_id="walk",
            symbol="BTCUSDT",
            long_venue="a",
            short_venue="b",
            target_size_base=target_lots * STEP,
            tolerance_base=tolerance_lots * STEP,
        )
        self.last_dest = S.SCANNING.value

    def teardown(self) -> None:
        if hasattr(self, "fsm"):
            self.fsm.detach()

    @precondition(lambda self: self.fsm.state is S.SCANNING)
    @rule(abandon=st.booleans())
    def preflight(self, abandon: bool) -> None:
        if abandon and not self.fsm.is_flat:
            with pytest.raises(TransitionRefused):
                self.fsm.abandon(reason="pre-flight failed")
        elif abandon:
            self.fsm.abandon(reason="pre-flight failed")
            assert self.fsm.state is S.CLOSED
            return
        if self.fsm.state is S.SCANNING:
            self.fsm.begin_open(reason="entry")

    @precondition(lambda self: self.fsm.state is S.SCANNING)
    @rule()
    def rest_maker(self) -> None:
        """Maker-taker entry: the maker leg's post-only order rests (alternative to ``preflight``)."""
        self.fsm.begin_rest(reason="maker entry")
        assert self.fsm.state is S.RESTING

    @precondition(lambda self: self.fsm.state is S.RESTING)
    @rule(percent=st.integers(min_value=0, max_value=100), hedge_percent=st.sampled_from([100, 100, 0, 50]))
    def maker_fill_and_hedge(self, percent: int, hedge_percent: int) -> None:
        """A (partial) maker fill on the long leg, then the taker hedge of the difference (maybe short)."""
        remaining = max(self.fsm.target_size_base - self.fsm.long_filled_base, D(0))
        self.fsm.apply_leg_delta(LegSide.LONG, portion(remaining, percent))
        gap = self.fsm.long_filled_base - self.fsm.short_filled_base
        if gap > 0:
            self.fsm.apply_leg_delta(LegSide.SHORT, portion(gap, hedge_percent))

    @precondition(lambda self: self.fsm.state is S.RESTING)
    @rule()
    def end_rest(self) -> None:
        hedged, flat = self.fsm.is_hedged, self.fsm.is_flat
        if hedged and not self.fsm.is_full_and_hedged:
            self.fsm.accept_hedged_size()
        self.fsm.legs_settled(reason="maker order terminal")
        expected = S.MONITORING if hedged else S.CLOSED if flat else S.RECOVERING
        assert self.fsm.state is expected

    @precondition(lambda self: self.fsm.state is S.OPENING)
    @rule(leg=legs, percent=st.sampled_from([0, 100]) | st.integers(min_value=0, max_value=110))
    def entry_fill(self, leg: LegSide, percent: int) -> None:
        remaining = max(self.fsm.target_size_base - self.fsm.leg_base(leg), D(0))
        self.fsm.apply_leg_delta(leg, portion(remaining, percent))

    @precondition(lambda self: self.fsm.state is S.OPENING)
    @rule()
    def settle(self) -> None:
        full = self.fsm.is_full_and_hedged
        flat = self.fsm.is_flat
        self.fsm.legs_settled(reason="both legs terminal")
        expected = S.MONITORING if full else S.CLOSED if flat else S.RECOVERING
        assert self.fsm.state is expected

    @precondition(lambda self: self.fsm.state is S.RECOVERING)
    @rule(outcomes=st.lists(percents, max_size=8), unwind=st.booleans())
    def repair(self, outcomes: list[int], unwind: bool) -> None:
        """Complete the lagging leg (bounded attempts) or unwind both; venue results may be partial."""
        fsm = self.fsm
        pending = iter(outcomes)  # once exhausted, orders fill completely
        attempts = 0
        for _ in range(100):
            if fsm.state is not S.RECOVERING:
                break
            if fsm.is_flat:
                fsm.recovered(reason="flat")
            elif fsm.is_hedged and not unwind:
                fsm.accept_hedged_size()
                fsm.recovered(reason="hedged")
            elif not unwind and attempts < MAX_COMPLETE_ATTEMPTS:
                lagging = LegSide.LONG if fsm.long_filled_base < fsm.short_filled_base else LegSide.SHORT
                fsm.apply_leg_delta(lagging, portion(abs(fsm.net_exposure_base), next(pending, 100)))
                attempts += 1
            else:
                unwind = True
                fsm.start_close(reason="unwind")
                for leg in LegSide:
                    fsm.apply_leg_delta(leg, -portion(fsm.leg_base(leg), next(pending, 100)))
                if fsm.is_flat:
                    fsm.closed_flat(reason="unwound")
                else:
                    fsm.close_incomplete(reason="partial unwind")
        else:
            raise AssertionError("repair loop did not finish")
        assert (fsm.state is S.MONITORING and fsm.is_hedged) or (fsm.state is S.CLOSED and fsm.is_flat)

    @precondition(lambda self: self.fsm.state is S.MONITORING)
    @rule()
    def exit_signal(self) -> None:
        self.fsm.start_close(reason="exit rule")
        assert self.fsm.exit_reason is not None

    @precondition(lambda self: self.fsm.state is S.CLOSING)
    @rule(leg=legs, percent=percents)
    def exit_fill(self, leg: LegSide, percent: int) -> None:
        self.fsm.apply_leg_delta(leg, -portion(self.fsm.leg_base(leg), percent))

    @precondition(lambda self: self.fsm.state is S.CLOSING)
    @rule()
    def verify_exit(self) -> None:
        if self.fsm.is_flat:
            self.fsm.closed_flat(reason="verified flat")
        else:
            with pytest.raises(TransitionRefused):
                self.fsm.closed_flat(reason="verified flat")
            self.fsm.close_incomplete(reason="residual exposure")

    @precondition(lambda self: self.fsm.state in FAULTABLE)
    @rule()
    def reconciliation_fault(self) -> None:
        self.fsm.fault(reason="leg mismatch found by reconciliation")
        assert self.fsm.state is S.ERROR

    @precondition(lambda self: self.fsm.state is S.ERROR)
    @rule()
    def start_repair(self) -> None:
        self.fsm.recover(reason="automatic repair")

    @rule(leg=legs, lots=st.integers(min_value=-5, max_value=5))
    def stray_fill(self, leg: LegSide, lots: int) -> None:
        """A late or unexpected fill (or a venue-side reduction) in any state."""
        before_state = self.fsm.state
        before_leg = self.fsm.leg_base(leg)
        delta = lots * STEP
        if before_state is S.CLOSED or before_leg + delta < 0:
            with pytest.raises(UpdateRefused):
                self.fsm.apply_leg_delta(leg, delta)
            assert self.fsm.leg_base(leg) == before_leg and self.fsm.state is before_state
            return
        self.fsm.apply_leg_delta(leg, delta)
        assert self.fsm.leg_base(leg) == before_leg + delta
        if before_state is S.MONITORING and not self.fsm.is_hedged:
            assert self.fsm.state is S.ERROR
        else:
            assert self.fsm.state is before_state

    @precondition(lambda self: self.fsm.state is S.CLOSED)
    @rule(trigger=st.sampled_from(TRIGGERS))
    def closed_is_final_then_next_position(self, trigger: str) -> None:
        with pytest.raises(InvalidTransition):
            getattr(self.fsm, trigger)(reason="after close")
        self.records_form_a_chain()
        self._new_position(int(self.fsm.target_size_base / STEP) + 1, tolerance_lots=1)

    @invariant()
    def never_monitoring_unhedged(self) -> None:
        if self.fsm.state is S.MONITORING:
            assert self.fsm.is_hedged
            assert abs(self.fsm.long_filled_base - self.fsm.short_filled_base) <= self.fsm.tolerance_base

    @invariant()
    def legs_never_negative(self) -> None:
        assert self.fsm.long_filled_base >= 0 and self.fsm.short_filled_base >= 0

    @invariant()
    def closed_means_flat_and_detached(self) -> None:
        if self.fsm.state is S.CLOSED:
            assert self.fsm.is_flat and not self.fsm.is_attached and self.fsm.exit_reason

    @invariant()
    def records_form_a_chain(self) -> None:
        for record in self.fsm.drain_transitions():
            assert record.entity == "position" and record.entity_id == "walk"
            assert record.source == self.last_dest
            assert (S(record.source), record.trigger) in EXPECTED_EDGES
            assert S(record.dest) in EXPECTED_EDGES[(S(record.source), record.trigger)]
            self.last_dest = record.dest
        assert self.last_dest == self.fsm.state.value


PositionEngine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_position_engine_random_walk = PositionEngine.TestCase


def test_new_from_a_prepared_spare_is_exactly_a_fresh_machine() -> None:
    """``PositionFsm.new`` takes a model joined to the machine in advance (off an entry's path):
    same state, fields, empty outbox and working triggers as ``PositionFsm(...)``."""
    from machines import position as module

    module._SPARES.clear()
    PositionFsm.prepare_spare()
    spare = module._SPARES[-1]
    fields = dict(position_id="p-spare", symbol="BTC", long_venue="a", short_venue="b",
                  target_size_base=TARGET, tolerance_base=TOL)
    pos = PositionFsm.new(**fields)
    assert pos is spare and not module._SPARES  # the spare was used
    plain = PositionFsm(**{**fields, "position_id": "p-plain"})
    for model in (pos, plain):
        assert model.state is S.SCANNING and model.is_attached and model.drain_transitions() == []
        assert (model.long_filled_base, model.short_filled_base, model.exit_reason) == (D(0), D(0), None)
    assert (pos.symbol, pos.long_venue, pos.short_venue, pos.target_size_base, pos.tolerance_base) == (
        "BTC", "a", "b", TARGET, TOL)
    pos.begin_open(reason="go")
    assert pos.state is S.OPENING and [(r.source, r.dest) for r in pos.drain_transitions()] == [("scanning", "opening")]
    assert plain.state is S.SCANNING  # models do not share state
    # Without a spare it builds one; an invalid request leaves a prepared spare blank and usable.
    assert PositionFsm.new(**{**fields, "position_id": "p-built"}).state is S.SCANNING
    PositionFsm.prepare_spare()
    with pytest.raises(ValueError, match="two different venues"):
        PositionFsm.new(**{**fields, "short_venue": "a"})
    assert len(module._SPARES) == 1
    assert PositionFsm.new(**{**fields, "position_id": "p-after"}).position_id == "p-after"
    for _ in range(module.MAX_SPARES + 3):
        PositionFsm.prepare_spare()
    assert len(module._SPARES) == module.MAX_SPARES
    module._SPARES.clear()
