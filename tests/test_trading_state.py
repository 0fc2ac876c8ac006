"""The trading-state gate: the full state x intent table, written out by hand."""

from __future__ import annotations

import pytest

from risk.trading_state import (
    GateReason,
    IntentKind,
    OrderIntent,
    TradingState,
    gate_order,
    most_restrictive,
)

A, R, H = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED
K = IntentKind

# (state, kind, emergency) -> allowed, for intents built with the usual reduces_exposure.
TABLE = {
    (A, K.OPEN, False): True, (A, K.OPEN, True): True,
    (A, K.CLOSE, False): True, (A, K.CLOSE, True): True,
    (A, K.REPAIR, False): True, (A, K.REPAIR, True): True,
    (A, K.UNWIND, False): True, (A, K.UNWIND, True): True,
    (A, K.FLATTEN, False): True, (A, K.FLATTEN, True): True,
    (A, K.CANCEL, False): True, (A, K.CANCEL, True): True,
    (R, K.OPEN, False): False, (R, K.OPEN, True): False,
    (R, K.CLOSE, False): True, (R, K.CLOSE, True): True,
    (R, K.REPAIR, False): True, (R, K.REPAIR, True): True,  # completing a hedge cuts net delta
    (R, K.UNWIND, False): True, (R, K.UNWIND, True): True,
    (R, K.FLATTEN, False): True, (R, K.FLATTEN, True): True,
    (R, K.CANCEL, False): True, (R, K.CANCEL, True): True,
    (H, K.OPEN, False): False, (H, K.OPEN, True): False,
    (H, K.CLOSE, False): False, (H, K.CLOSE, True): True,
    (H, K.REPAIR, False): False, (H, K.REPAIR, True): True,  # the engine marks naked-leg repairs emergency
    (H, K.UNWIND, False): False, (H, K.UNWIND, True): True,
    (H, K.FLATTEN, False): True, (H, K.FLATTEN, True): True,  # operator command: always an emergency
    (H, K.CANCEL, False): True, (H, K.CANCEL, True): True,
}


def test_table_covers_every_state_kind_and_flag():
    assert set(TABLE) == {(s, k, e) for s in TradingState for k in IntentKind for e in (False, True)}


@pytest.mark.parametrize(
    "state, kind, emergency",
    sorted(TABLE, key=lambda key: (key[0].value, key[1].value, key[2])),
    ids=lambda v: getattr(v, "value", str(v)),
)
def test_gate_table(state, kind, emergency):
    decision = gate_order(state, OrderIntent.for_kind(kind, emergency=emergency))
    assert decision.allowed is TABLE[(state, kind, emergency)]


@pytest.mark.parametrize(
    "state, emergency, allowed",
    [(A, False, True), (R, False, False), (R, True, False), (H, False, False), (H, True, False)],
)
def test_repair_that_does_not_reduce_exposure(state, emergency, allowed):
    intent = OrderIntent(IntentKind.REPAIR, reduces_exposure=False, emergency=emergency)
    assert gate_order(state, intent).allowed is allowed


def test_emergency_flag_never_admits_a_non_reducing_close_when_halted():
    assert not gate_order(H, OrderIntent(IntentKind.CLOSE, reduces_exposure=False, emergency=True)).allowed


def test_reasons():
    assert gate_order(A, OrderIntent.for_kind(K.OPEN)).reason is GateReason.ACTIVE
    assert gate_order(R, OrderIntent.for_kind(K.OPEN)).reason is GateReason.REDUCING_DENIES_OPEN
    assert gate_order(R, OrderIntent.for_kind(K.CLOSE)).reason is GateReason.REDUCING_ALLOWS_REDUCE
    assert gate_order(H, OrderIntent.for_kind(K.CLOSE)).reason is GateReason.HALTED_DENIES
    assert (
        gate_order(H, OrderIntent.for_kind(K.CLOSE, emergency=True)).reason
        is GateReason.HALTED_ALLOWS_EMERGENCY_REDUCE
    )
    assert gate_order(H, OrderIntent.for_kind(K.CANCEL)).reason is GateReason.CANCEL_ALLOWED


def test_open_never_reduces_exposure():
    with pytest.raises(ValueError):
        OrderIntent(IntentKind.OPEN, reduces_exposure=True)
    assert OrderIntent.for_kind(IntentKind.OPEN).reduces_exposure is False


def test_most_restrictive():
    assert most_restrictive() is A
    assert most_restrictive(A, R) is R
    assert most_restrictive(R, H, A) is H
