"""Exit rules: each rule fires and does not fire at its boundary, and the priority order holds.

Baseline (fires nothing with LIMITS): 1 BTC long A / short B, 1000 USD notional, entered at 0
with spread 0.0001/h; now the spread is 0.0001 - 0.00001 = 0.00009/h; marks 1000, liquidation
500 (long) and 1500 (short) = 50 % away; venues show +1 / -1; funding 1 USD, fees 0.5 USD, exit
cost 0.5 USD. Held 10 h (past the 8 h minimum hold). Holding 8 h earns 0.00009 x 1000 x 8 = 0.72 USD.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

import pytest

from bot.core.domain import Opportunity
from risk.exit_rules import (
    ExitLimits,
    ExitPriority,
    ExitReason,
    HeldPosition,
    evaluate_exit,
    operator_exit,
)

HOUR_MS = 3_600_000
NOW = 10 * HOUR_MS
LIMITS = ExitLimits(take_profit_usd=D("10"))


def make_pos(**overrides) -> HeldPosition:
    base = HeldPosition(
        position_id="p1",
        symbol="BTC",
        long_venue="A",
        short_venue="B",
        size_base=D("1"),
        entry_spread_hourly=D("0.0001"),
        entry_ts_ms=0,
        long_hourly_rate=D("0.00001"),
        short_hourly_rate=D("0.0001"),
        long_mark_price=D("1000"),
        short_mark_price=D("1000"),
        notional_usd=D("1000"),
        long_liquidation_price=D("500"),
        short_liquidation_price=D("1500"),
        long_venue_size_base=D("1"),
        short_venue_size_base=D("-1"),
        accrued_funding_usd=D("1"),
        fees_paid_usd=D("0.5"),
        est_exit_cost_usd=D("0.5"),
    )
    return replace(base, **overrides)


def make_alt(**overrides) -> Opportunity:
    base = Opportunity(
        symbol="ETH",
        long_venue="A",
        short_venue="C",
        long_rate=D("0"),
        long_interval_hours=D("8"),
        short_rate=D("0.004"),
        short_interval_hours=D("8"),
        spread_hourly=D("0.0005"),
        apr=D("4.38"),
        costs=D("2"),
        expected_net=D("10"),
        breakeven_hours=D("4"),
        notional_usd=D("1000"),
        horizon_hours=D("24"),
        fees_usd=D("1.6"),
        slippage_usd=D("0.2"),
        basis_usd=D("0.2"),
        long_price=D("3000"),
        short_price=D("3001"),
    )
    return replace(base, **overrides)


def reason(pos=None, now=NOW, limits=LIMITS, alt=None):
    decision = evaluate_exit(pos or make_pos(), now, limits, alt)
    return None if decision is None else decision.reason


def test_baseline_holds():
    assert evaluate_exit(make_pos(), NOW, LIMITS, None) is None


CASES = [
    # liquidation: distance = (mark - liq) / mark for a long, (liq - mark) / mark for a short.
    ("liq_long_at_buffer", {"long_liquidation_price": D("850")}, "liquidation_risk"),
    ("liq_long_outside_buffer", {"long_liquidation_price": D("849")}, None),
    ("liq_short_at_buffer", {"short_liquidation_price": D("1150")}, "liquidation_risk"),
    ("liq_short_outside_buffer", {"short_liquidation_price": D("1151")}, None),
    ("liq_long_already_crossed", {"long_liquidation_price": D("1010")}, "liquidation_risk"),
    ("liq_unknown", {"long_liquidation_price": None, "short_liquidation_price": None}, None),
    # leg presence (signed venue sizes)
    ("long_leg_gone", {"long_venue_size_base": D("0")}, "leg_missing"),
    ("short_leg_gone", {"short_venue_size_base": D("0")}, "leg_missing"),
    ("short_leg_wrong_direction", {"short_venue_size_base": D("1")}, "leg_missing"),
    ("sizes_unknown", {"long_venue_size_base": None, "short_venue_size_base": None}, None),
    # delta drift: |long - short| / size x 100 > 2 %
    ("drift_3pct", {"short_venue_size_base": D("-0.97")}, "delta_drift"),
    ("drift_2pct_at_limit", {"short_venue_size_base": D("-0.98")}, None),
    ("drift_one_leg_known", {"long_venue_size_base": D("0.97"), "short_venue_size_base": None}, "delta_drift"),
    ("drift_one_leg_known_ok", {"long_venue_size_base": D("1"), "short_venue_size_base": None}, None),
    # funding flip (emergency): held spread <= -entry spread (-0.0001); a milder negative is not a flip
    ("flip_negative", {"long_hourly_rate": D("0.0002"), "short_hourly_rate": D("0.0001")}, "funding_flip"),
    ("flip_mild_negative_is_eroded", {"long_hourly_rate": D("0.00019"), "short_hourly_rate": D("0.0001")},
     "spread_eroded"),
    ("flip_rate_unknown", {"long_hourly_rate": None}, None),
    # take profit: funding - fees - exit cost >= 10
    ("take_profit_at", {"accrued_funding_usd": D("11")}, "take_profit"),
    ("take_profit_below", {"accrued_funding_usd": D("10.99")}, None),
    # spread erosion: spread < 0.25 x 0.0001 = 0.000025 (exit cost 0 keeps negative_ev quiet)
    ("eroded", {"short_hourly_rate": D("0.000034"), "est_exit_cost_usd": D("0")}, "spread_eroded"),
    ("eroded_at_floor", {"short_hourly_rate": D("0.000035"), "est_exit_cost_usd": D("0")}, None),
    # exit cost alone never makes holding negative EV (it is paid whether we close now or later)
    ("exit_cost_is_not_negative_ev", {"est_exit_cost_usd": D("0.73")}, None),
]


def test_negative_ev_when_erosion_rule_disabled():
    # spread -0.00001/h x 1000 USD x 8 h = -0.08 USD: holding loses; erosion disabled so EV decides
    limits = replace(LIMITS, spread_erosion_fraction=D("0"))
    pos = make_pos(long_hourly_rate=D("0.00011"), short_hourly_rate=D("0.0001"))
    assert reason(pos, limits=limits) == "negative_ev"
    assert reason(make_pos(long_hourly_rate=D("0.0001"), short_hourly_rate=D("0.0001")), limits=limits) is None


@pytest.mark.parametrize("over, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rule(over, expected):
    assert reason(make_pos(**over)) == expected


def test_take_profit_disabled_by_default():
    assert ExitLimits().take_profit_usd is None
    assert reason(make_pos(accrued_funding_usd=D("1000")), limits=ExitLimits()) is None


def test_max_hold_time_boundary():
    limits = replace(LIMITS, max_hold_ms=20 * HOUR_MS)
    assert reason(now=20 * HOUR_MS - 1, limits=limits) is None
    assert reason(now=20 * HOUR_MS, limits=limits) == "max_hold_time"


def test_spread_eroded_ignored_when_entry_spread_not_positive():
    pos = make_pos(entry_spread_hourly=D("0"), short_hourly_rate=D("0.00001"), est_exit_cost_usd=D("0"))
    assert reason(pos) is None


# ---- rotation: gain = net - 0.00009 x 1000 x 24 (2.16) - exit 0.5 = net - 2.66 > 5 --------------

ROTATE_NOW = 24 * HOUR_MS  # rotation cooldown (24 h) elapsed


def test_rotate_fires_above_min_gain():
    decision = evaluate_exit(make_pos(), ROTATE_NOW, LIMITS, make_alt(expected_net=D("7.67")))
    assert decision is not None and decision.reason == "rotate" and decision.priority == "opportunity"
    assert "ETH" in decision.detail


def test_rotate_needs_gain_strictly_above_min():
    assert reason(now=ROTATE_NOW, alt=make_alt(expected_net=D("7.66"))) is None


def test_rotate_waits_for_cooldown():
    assert reason(now=ROTATE_NOW - 1, alt=make_alt(expected_net=D("100"))) is None


def test_rotate_ignores_the_same_pair():
    same = make_alt(symbol="BTC", long_venue="A", short_venue="B", expected_net=D("100"))
    assert reason(now=ROTATE_NOW, alt=same) is None


def test_rotate_to_same_symbol_on_other_venues():
    other = make_alt(symbol="BTC", long_venue="A", short_venue="C", expected_net=D("100"))
    assert reason(now=ROTATE_NOW, alt=other) == "rotate"


def test_rotate_without_alternative_or_known_spread():
    assert reason(now=ROTATE_NOW, alt=None) is None
    assert reason(make_pos(long_hourly_rate=None), now=ROTATE_NOW, alt=make_alt(expected_net=D("100"))) is None


# ---- priority order -----------------------------------------------------------------------------


def test_liquidation_beats_take_profit():
    pos = make_pos(long_liquidation_price=D("900"), accrued_funding_usd=D("50"))
    decision = evaluate_exit(pos, NOW, LIMITS, None)
    assert decision.reason == "liquidation_risk" and decision.priority == "emergency"


def test_leg_missing_beats_delta_drift():
    assert reason(make_pos(short_venue_size_base=D("0"))) == "leg_missing"


def test_liquidation_beats_leg_missing():
    assert reason(make_pos(short_venue_size_base=D("0"), long_liquidation_price=D("950"))) == "liquidation_risk"


def test_delta_drift_beats_funding_flip():
    pos = make_pos(short_venue_size_base=D("-0.5"), long_hourly_rate=D("0.001"))
    assert reason(pos) == "delta_drift"


def test_funding_flip_beats_take_profit():
    pos = make_pos(long_hourly_rate=D("0.001"), accrued_funding_usd=D("50"))
    assert reason(pos) == "funding_flip"


def test_take_profit_beats_standard_rules():
    pos = make_pos(accrued_funding_usd=D("50"), est_exit_cost_usd=D("5"))  # also negative EV
    decision = evaluate_exit(pos, NOW, LIMITS, None)
    assert decision.reason == "take_profit" and decision.priority == "profit"


def test_min_hold_blocks_spread_eroded_but_not_delta_drift():
    eroded = make_pos(short_hourly_rate=D("0.00002"), est_exit_cost_usd=D("0"))
    early = LIMITS.min_hold_ms - 1
    assert reason(eroded, now=early) is None
    assert reason(eroded, now=LIMITS.min_hold_ms) == "spread_eroded"
    drifting = replace(eroded, short_venue_size_base=D("-0.9"))
    assert reason(drifting, now=early) == "delta_drift"


def test_min_hold_does_not_block_take_profit():
    assert reason(make_pos(accrued_funding_usd=D("11")), now=1) == "take_profit"


def test_min_hold_blocks_negative_ev_max_hold_and_rotate():
    limits = replace(LIMITS, min_hold_ms=48 * HOUR_MS, max_hold_ms=30 * HOUR_MS, rotation_cooldown_ms=0)
    pos = make_pos(est_exit_cost_usd=D("5"))
    assert reason(pos, now=40 * HOUR_MS, limits=limits, alt=make_alt(expected_net=D("100"))) is None


def test_spread_eroded_beats_max_hold_and_negative_ev():
    pos = make_pos(short_hourly_rate=D("0.00002"), est_exit_cost_usd=D("5"))
    assert reason(pos, now=LIMITS.max_hold_ms) == "spread_eroded"


def test_max_hold_beats_negative_ev():
    assert reason(make_pos(est_exit_cost_usd=D("5")), now=LIMITS.max_hold_ms) == "max_hold_time"


def test_standard_rules_beat_rotation():
    limits = replace(LIMITS, spread_erosion_fraction=D("0"))
    pos = make_pos(long_hourly_rate=D("0.00011"), short_hourly_rate=D("0.0001"))
    decision = evaluate_exit(pos, ROTATE_NOW, limits, make_alt(expected_net=D("100")))
    assert decision.reason == "negative_ev" and decision.priority == "standard"


# ---- operator exits and constants ---------------------------------------------------------------


def test_operator_exits_are_emergencies():
    shutdown = operator_exit(ExitReason.SHUTDOWN, "SIGTERM")
    assert (shutdown.reason, shutdown.priority, shutdown.detail) == ("shutdown", "emergency", "SIGTERM")
    assert shutdown.is_emergency
    assert operator_exit(ExitReason.MANUAL_FLATTEN).reason == "manual_flatten"
    with pytest.raises(ValueError):
        operator_exit(ExitReason.TAKE_PROFIT)


def test_reason_codes_are_the_documented_strings():
    assert {r.value for r in ExitReason} == {
        "liquidation_risk", "delta_drift", "leg_missing", "funding_flip", "take_profit",
        "spread_eroded", "max_hold_time", "negative_ev", "rotate", "shutdown", "manual_flatten",
    }
    assert {p.value for p in ExitPriority} == {"emergency", "profit", "standard", "opportunity"}


@pytest.mark.parametrize(
    "bad",
    [{"spread_erosion_fraction": D("1.5")}, {"spread_erosion_fraction": D("-0.1")},
     {"liquidation_buffer_pct": D("-1")}, {"min_hold_ms": -1}],
)
def test_limits_reject_nonsense(bad):
    with pytest.raises(ValueError):
        ExitLimits(**bad)
