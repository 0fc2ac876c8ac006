"""Circuit breakers: the CLOSED/OPEN/HALF_OPEN machine, the switch breakers and the board."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from risk.breakers import (
    BreakerBoard,
    BreakerEvent,
    BreakerEventKind,
    BreakerSettings,
    BreakerState,
    CircuitBreaker,
    ErrorBreakerConfig,
    SwitchBreaker,
)
from risk.trading_state import TradingState

CLOSED, OPEN, HALF = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN

# Consecutive-failure rule only (rate rule disabled).
CONSECUTIVE = ErrorBreakerConfig(failure_threshold=3, max_error_rate=None, cooldown_ms=1_000)
# Error-rate rule only (consecutive rule out of reach).
RATE = ErrorBreakerConfig(
    failure_threshold=100, max_error_rate=D("0.5"), error_rate_window_ms=10_000, error_rate_min_samples=4,
    cooldown_ms=1_000,
)


def fail(breaker: CircuitBreaker, *times: int) -> CircuitBreaker:
    for t in times:
        breaker, _ = breaker.record_failure(t, "boom")
    return breaker


def opened(config=CONSECUTIVE, at=100) -> CircuitBreaker:
    breaker = fail(CircuitBreaker("venue_errors:A", config), at - 2, at - 1, at)
    assert breaker.state is OPEN
    return breaker


# ---- CircuitBreaker ---------------------------------------------------------------------------


def test_opens_on_consecutive_failures_with_an_event():
    breaker = fail(CircuitBreaker("venue_errors:A", CONSECUTIVE), 1, 2)
    assert breaker.state is CLOSED and breaker.consecutive_failures == 2
    breaker, events = breaker.record_failure(3, "timeout")
    assert breaker.state is OPEN and breaker.opened_ts_ms == 3
    assert events == (
        BreakerEvent(BreakerEventKind.OPENED, "venue_errors:A", CLOSED, OPEN, "3 consecutive failures: timeout", 3),
    )


def test_success_resets_the_consecutive_count():
    breaker = fail(CircuitBreaker("x", CONSECUTIVE), 1, 2)
    breaker, events = breaker.record_success(3)
    assert events == () and breaker.consecutive_failures == 0
    breaker = fail(breaker, 4, 5)
    assert breaker.state is CLOSED


def test_open_blocks_until_cooldown_then_half_opens_and_admits_one_probe():
    breaker = opened(at=100)
    allowed, breaker, events = breaker.allows_request(1_099)
    assert not allowed and events == () and breaker.state is OPEN
    allowed, breaker, events = breaker.allows_request(1_100)
    assert allowed and breaker.state is HALF
    assert [(e.kind, e.from_state, e.to_state) for e in events] == [(BreakerEventKind.HALF_OPENED, OPEN, HALF)]
    allowed, breaker, events = breaker.allows_request(1_101)  # the probe is still out
    assert not allowed and events == ()


def test_probe_success_closes():
    _, breaker, _ = opened(at=100).allows_request(1_100)
    breaker, events = breaker.record_success(1_150)
    assert breaker.state is CLOSED and breaker.consecutive_failures == 0 and breaker.recent == ()
    assert [(e.kind, e.from_state, e.to_state, e.reason) for e in events] == [
        (BreakerEventKind.CLOSED, HALF, CLOSED, "probe succeeded")
    ]
    assert breaker.allows_request(1_151).allowed


def test_probe_failure_reopens_and_restarts_the_cooldown():
    _, breaker, _ = opened(at=100).allows_request(1_100)
    breaker, events = breaker.record_failure(1_200, "503")
    assert breaker.state is OPEN and breaker.opened_ts_ms == 1_200
    assert [(e.kind, e.from_state, e.to_state, e.reason) for e in events] == [
        (BreakerEventKind.OPENED, HALF, OPEN, "probe failed: 503")
    ]
    assert not breaker.allows_request(2_199).allowed
    assert breaker.allows_request(2_200).allowed


def test_a_lost_probe_is_replaced_after_the_cooldown():
    _, breaker, _ = opened(at=100).allows_request(1_100)
    assert not breaker.allows_request(2_099).allowed
    allowed, breaker, _ = breaker.allows_request(2_100)
    assert allowed and breaker.probe_ts_ms == 2_100


def test_outcomes_while_open_are_ignored():
    breaker = opened(at=100)
    after_success, events = breaker.record_success(500)
    assert after_success == breaker and events == ()
    after_failure, events = breaker.record_failure(500)
    assert after_failure == breaker and events == ()


def test_record_applies_the_cooldown_first():
    breaker, events = opened(at=100).record_success(1_100)
    assert breaker.state is CLOSED
    assert [e.kind for e in events] == [BreakerEventKind.HALF_OPENED, BreakerEventKind.CLOSED]


def test_tick_half_opens():
    breaker, events = opened(at=100).tick(5_000)
    assert breaker.state is HALF and len(events) == 1 and events[0].ts_ms == 5_000


def test_error_rate_at_threshold_stays_closed_above_opens():
    breaker = CircuitBreaker("r", RATE)
    for t, ok in [(1, True), (2, False), (3, True), (4, False)]:
        breaker, _ = breaker.record_success(t) if ok else breaker.record_failure(t)
    assert breaker.state is CLOSED  # 2/4 = 0.5, not above 0.5
    breaker, events = breaker.record_failure(5)
    assert breaker.state is OPEN  # 3/5 > 0.5
    assert events[0].reason.startswith("3/5 failed within 10000 ms")


def test_error_rate_needs_min_samples():
    breaker = fail(CircuitBreaker("r", RATE), 1, 2, 3)  # 3/3 failed but only 3 samples
    assert breaker.state is CLOSED


def test_error_rate_window_forgets_old_outcomes():
    breaker = fail(CircuitBreaker("r", RATE), 0, 1)
    breaker, _ = breaker.record_success(2)
    inside, _ = breaker.record_failure(5_000)
    assert inside.state is OPEN  # 3/4 within the window
    outside, _ = breaker.record_failure(10_001)  # window (1, 10001]: success@2 + this failure
    assert outside.state is CLOSED
    assert [t for t, _ in outside.recent] == [2, 10_001]


def test_breakers_are_immutable_values():
    breaker = CircuitBreaker("x", CONSECUTIVE)
    breaker.record_failure(1)
    assert breaker.consecutive_failures == 0
    with pytest.raises(AttributeError):
        breaker.state = OPEN  # type: ignore[misc]


def test_config_rejects_nonsense():
    with pytest.raises(ValueError):
        ErrorBreakerConfig(failure_threshold=0)
    with pytest.raises(ValueError):
        ErrorBreakerConfig(max_error_rate=D("1.5"))


def test_switch_breaker_only_reports_changes():
    switch, events = SwitchBreaker("manual").set_open(10, "operator")
    assert switch.is_open and [(e.kind, e.reason, e.ts_ms) for e in events] == [
        (BreakerEventKind.OPENED, "operator", 10)
    ]
    again, events = switch.set_open(20, "again")
    assert again == switch and events == ()
    closed, events = switch.set_closed(30, "resumed")
    assert not closed.is_open and events[0].kind is BreakerEventKind.CLOSED


# ---- BreakerBoard -----------------------------------------------------------------------------

SETTINGS = BreakerSettings(
    venue_failure_threshold=2,
    venue_max_error_rate=None,
    venue_cooldown_ms=1_000,
    stale_quote_max_age_ms=5_000,
    max_drawdown_pct=D("10"),
    unhedged_limit_ms=2_000,
    unhedged_cooldown_ms=60_000,
)


def fresh_board(now=1_000) -> BreakerBoard:
    board = BreakerBoard.create(["A", "B"], SETTINGS)
    board, _ = board.record_quote("A", now, now)
    board, _ = board.record_quote("B", now, now)
    return board


def test_new_board_is_stale_until_quotes_arrive():
    board = BreakerBoard.create(["A", "B"], SETTINGS)
    assert board.trading_state() is TradingState.REDUCING
    assert board.global_open() == ["stale_data: every venue is stale"]
    assert board.open_venues() == frozenset({"A", "B"})
    board, events = board.record_quote("A", 1_000, 1_000)
    assert [(e.breaker, e.kind) for e in events] == [("stale_data:A", BreakerEventKind.CLOSED)]
    assert board.trading_state() is TradingState.ACTIVE
    assert board.global_open() == []
    assert board.open_venues() == frozenset({"B"})


def test_stale_data_opens_per_venue_after_max_age():
    board = fresh_board(now=1_000)
    board, events = board.tick(6_000)
    assert events == ()  # age 5000 is not beyond 5000
    board, _ = board.record_quote("B", 5_500, 6_500)
    board, events = board.tick(6_001)
    assert [(e.breaker, e.to_state) for e in events] == [("stale_data:A", OPEN)]
    assert board.venue_open("A") and not board.venue_open("B")
    assert board.trading_state() is TradingState.ACTIVE  # one venue stale is a venue matter
    board, _ = board.tick(10_501)  # B's quote (5500) is now 5001 ms old
    assert board.all_venues_stale and board.trading_state() is TradingState.REDUCING


def test_an_old_quote_does_not_close_the_stale_breaker():
    board = BreakerBoard.create(["A"], SETTINGS)
    board, events = board.record_quote("A", 1_000, 7_000)
    assert events == () and board.venue_open("A")


def test_unknown_venue_counts_as_open():
    assert fresh_board().venue_open("Z")


def test_venue_error_breaker_blocks_only_its_venue():
    board = fresh_board()
    board, _ = board.record_venue_failure("A", 2_000, "502")
    board, events = board.record_venue_failure("A", 2_001, "502")
    assert [(e.breaker, e.to_state) for e in events] == [("venue_errors:A", OPEN)]
    assert board.open_venues() == frozenset({"A"})
    assert board.trading_state() is TradingState.ACTIVE and board.global_open() == []
    allowed, board, _ = board.venue_allows_request("A", 2_500)
    assert not allowed
    allowed, board, events = board.venue_allows_request("A", 3_001)
    assert allowed and events[0].to_state is HALF
    assert board.venue_open("A")  # half-open still blocks entries
    board, events = board.record_venue_success("A", 3_100)
    assert events[0].to_state is CLOSED and not board.venue_open("A")


def test_drawdown_opens_below_peak_minus_pct_and_latches():
    board = fresh_board()
    for equity in ("1000", "950", "900"):
        board, events = board.record_equity(D(equity), 2_000)
        assert events == ()
    assert board.peak_equity_usd == D("1000")
    board, events = board.record_equity(D("899.99"), 2_001)
    assert [(e.breaker, e.to_state) for e in events] == [("drawdown", OPEN)]
    assert board.trading_state() is TradingState.HALTED
    assert board.global_open()[0].startswith("drawdown: equity 899.99 USD < 900")
    board, events = board.record_equity(D("1200"), 3_000)
    assert events == () and board.trading_state() is TradingState.HALTED
    board, events = board.reset_drawdown(D("1200"), 4_000, "operator accepted the loss")
    assert events[0].to_state is CLOSED and board.peak_equity_usd == D("1200")
    assert board.trading_state() is TradingState.ACTIVE


def test_peak_rises_with_equity():
    board = fresh_board()
    board, _ = board.record_equity(D("1000"), 1)
    board, _ = board.record_equity(D("2000"), 2)
    board, events = board.record_equity(D("1799"), 3)  # floor 1800
    assert board.drawdown.is_open and events


def test_unhedged_window_breaker_cycle():
    board = fresh_board()
    board, events = board.record_unhedged_window(2_000, 2_000, "entry p1")
    assert events == () and board.trading_state() is TradingState.ACTIVE
    board, events = board.record_unhedged_window(2_001, 3_000, "entry p2")
    assert [(e.breaker, e.to_state) for e in events] == [("unhedged", OPEN)]
    assert "2001 ms > limit 2000 ms: entry p2" in events[0].reason
    assert board.trading_state() is TradingState.REDUCING
    assert board.global_open() == [f"unhedged: {events[0].reason}"]
    board, events = board.record_unhedged_window(10, 4_000, "exit p3")  # while open: ignored
    assert events == () and board.unhedged.state is OPEN
    board, _ = board.record_quote("A", 62_000, 62_000)
    board, _ = board.record_quote("B", 62_000, 62_000)
    board, events = board.tick(63_000)
    assert [(e.breaker, e.to_state) for e in events] == [("unhedged", HALF)]
    assert board.trading_state() is TradingState.ACTIVE  # the next entry is the probe
    failed, events = board.record_unhedged_window(5_000, 63_500, "entry p4")
    assert events[0].to_state is OPEN and failed.trading_state() is TradingState.REDUCING
    healed, events = board.record_unhedged_window(300, 63_500, "entry p4")
    assert events[0].to_state is CLOSED and healed.trading_state() is TradingState.ACTIVE


def test_manual_kill_switch_halts_until_resumed():
    board = fresh_board()
    board, events = board.kill(2_000, "operator: kill")
    assert [(e.breaker, e.to_state, e.reason) for e in events] == [("manual", OPEN, "operator: kill")]
    assert board.trading_state() is TradingState.HALTED
    assert board.global_open() == ["manual: operator: kill"]
    board, events = board.kill(2_100, "again")
    assert events == ()
    board, events = board.resume(3_000, "operator: resume")
    assert events[0].to_state is CLOSED and board.trading_state() is TradingState.ACTIVE


def test_halted_outranks_reducing():
    board = fresh_board()
    board, _ = board.record_unhedged_window(9_999, 2_000)
    board, _ = board.kill(2_000, "stop")
    assert board.trading_state() is TradingState.HALTED
    assert [r.split(":")[0] for r in board.global_open()] == ["manual", "unhedged"]


def test_board_updates_leave_the_old_board_untouched():
    board = fresh_board()
    board.kill(2_000, "stop")
    board.record_venue_failure("A", 2_000)
    assert board.trading_state() is TradingState.ACTIVE
    assert board.venue_errors["A"].consecutive_failures == 0


def test_settings_reject_nonsense():
    with pytest.raises(ValueError):
        BreakerSettings(max_drawdown_pct=D("0"))
    with pytest.raises(ValueError):
        BreakerSettings(unhedged_limit_ms=-1)
