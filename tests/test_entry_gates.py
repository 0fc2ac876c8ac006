"""Entry gates: one allowed and one denied case per gate, with hand-computed boundaries.

Baseline: BTC, long A / short B, 500 USD per leg, expected net 5 USD, breakeven 6 h; one ETH
position open with 500 USD on A and on C; 1000 USD equity and 800 USD free margin on A and B.
With the default limits that passes every gate.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

import pytest

from bot.core.domain import Opportunity
from risk.entry_gates import (
    DenialCode,
    EntryContext,
    EntryLimits,
    ExposureSummary,
    evaluate_entry,
)
from risk.trading_state import TradingState

NOW = 10_000_000


def make_opp(**overrides) -> Opportunity:
    base = Opportunity(
        symbol="BTC",
        long_venue="A",
        short_venue="B",
        long_rate=D("0.0001"),
        long_interval_hours=D("8"),
        short_rate=D("0.0005"),
        short_interval_hours=D("8"),
        spread_hourly=D("0.00005"),
        apr=D("0.438"),
        costs=D("1"),
        expected_net=D("5"),
        breakeven_hours=D("6"),
        notional_usd=D("500"),
        horizon_hours=D("24"),
        fees_usd=D("0.8"),
        slippage_usd=D("0.1"),
        basis_usd=D("0.1"),
        long_price=D("50000"),
        short_price=D("50010"),
    )
    return replace(base, **overrides)


def make_exposure(**overrides) -> ExposureSummary:
    fields = dict(
        position_count=1,
        notional_by_venue_usd={"A": D("500"), "C": D("500")},
        total_notional_usd=D("500"),
        symbols_held=frozenset({"ETH"}),
    )
    fields.update(overrides)
    return ExposureSummary(**fields)


def make_ctx(exposure: ExposureSummary | None = None, **overrides) -> EntryContext:
    fields = dict(
        now_ts_ms=NOW,
        trading_state=TradingState.ACTIVE,
        exposure=exposure or make_exposure(),
        equity_by_venue_usd={"A": D("1000"), "B": D("1000")},
        free_margin_by_venue_usd={"A": D("800"), "B": D("800")},
        long_quote_age_ms=1_000,
        short_quote_age_ms=1_000,
        long_slippage_bps=D("2"),
        short_slippage_bps=D("2"),
    )
    fields.update(overrides)
    return EntryContext(**fields)


def codes(opp=None, ctx=None, limits=None) -> tuple[str, ...]:
    decision = evaluate_entry(opp or make_opp(), ctx or make_ctx(), limits or EntryLimits())
    assert decision.allowed == (not decision.denials)
    return decision.codes


def test_baseline_passes_every_gate():
    decision = evaluate_entry(make_opp(), make_ctx(), EntryLimits())
    assert decision.allowed
    assert decision.denials == ()


CASES = [
    # (id, opp overrides, ctx builder kwargs, limits overrides, expected codes)
    ("net_at_min", {"expected_net": D("1")}, {}, {}, ()),
    ("net_below_min", {"expected_net": D("0.99")}, {}, {}, ("net_below_min",)),
    ("breakeven_at_max", {"breakeven_hours": D("24")}, {}, {}, ()),
    ("breakeven_over_max", {"breakeven_hours": D("24.01")}, {}, {}, ("breakeven_too_long",)),
    ("breakeven_never", {"breakeven_hours": None}, {}, {}, ("breakeven_too_long",)),
    ("positions_below_max", {}, {"exposure": make_exposure(position_count=2)}, {}, ()),
    ("positions_at_max", {}, {"exposure": make_exposure(position_count=3)}, {}, ("max_positions",)),
    ("symbol_held_case_insensitive", {}, {"exposure": make_exposure(symbols_held=frozenset({"btc"}))}, {},
     ("symbol_already_held",)),
    ("position_cap_at_max", {"notional_usd": D("1000")}, {}, {}, ()),
    ("position_cap_over", {"notional_usd": D("1000.01")}, {}, {}, ("notional_cap_position",)),
    # A already carries 2500: + 500 = 3000 (at cap); equity 2000 keeps leverage under 3x.
    ("venue_cap_at_max", {}, {"exposure": make_exposure(notional_by_venue_usd={"A": D("2500")}),
                              "equity_by_venue_usd": {"A": D("2000"), "B": D("1000")}}, {}, ()),
    ("venue_cap_over_long", {}, {"exposure": make_exposure(notional_by_venue_usd={"A": D("2500.01")}),
                                 "equity_by_venue_usd": {"A": D("2000"), "B": D("1000")}}, {},
     ("notional_cap_venue",)),
    ("venue_cap_over_short", {}, {"exposure": make_exposure(notional_by_venue_usd={"B": D("2500.01")}),
                                  "equity_by_venue_usd": {"A": D("1000"), "B": D("2000")}}, {},
     ("notional_cap_venue",)),
    ("total_cap_at_max", {}, {"exposure": make_exposure(total_notional_usd=D("2500"))}, {}, ()),
    ("total_cap_over", {}, {"exposure": make_exposure(total_notional_usd=D("2500.01"))}, {},
     ("notional_cap_total",)),
    # A: 400 held + 500 new = 900 on 300 equity = exactly 3x.
    ("leverage_at_max", {}, {"exposure": make_exposure(notional_by_venue_usd={"A": D("400")}),
                             "equity_by_venue_usd": {"A": D("300"), "B": D("1000")}}, {}, ()),
    ("leverage_over", {}, {"exposure": make_exposure(notional_by_venue_usd={"A": D("400")}),
                           "equity_by_venue_usd": {"A": D("299.99"), "B": D("1000")}}, {}, ("leverage",)),
    ("leverage_equity_unknown", {}, {"equity_by_venue_usd": {"A": D("1000")}}, {}, ("leverage",)),
    ("leverage_equity_zero", {}, {"equity_by_venue_usd": {"A": D("1000"), "B": D("0")}}, {}, ("leverage",)),
    # 600 USD leg at 3x needs 200 USD margin: 300 free leaves exactly the 100 minimum.
    ("free_margin_at_min", {"notional_usd": D("600")}, {"free_margin_by_venue_usd": {"A": D("300"), "B": D("800")}},
     {}, ()),
    ("free_margin_below", {"notional_usd": D("600")},
     {"free_margin_by_venue_usd": {"A": D("299.99"), "B": D("800")}}, {}, ("free_margin",)),
    ("free_margin_unknown", {}, {"free_margin_by_venue_usd": {"A": D("800")}}, {}, ("free_margin",)),
    ("quote_age_at_max", {}, {"long_quote_age_ms": 10_000}, {}, ()),
    ("quote_age_over", {}, {"long_quote_age_ms": 10_001}, {}, ("stale_quote",)),
    ("quote_missing", {}, {"short_quote_age_ms": None}, {}, ("stale_quote",)),
    ("quote_from_future", {}, {"short_quote_age_ms": -20_000}, {}, ("stale_quote",)),
    ("slippage_at_max", {}, {"short_slippage_bps": D("10")}, {}, ()),
    ("slippage_over", {}, {"short_slippage_bps": D("10.01")}, {}, ("slippage",)),
    ("slippage_book_too_thin", {}, {"long_slippage_bps": None}, {}, ("slippage",)),
    ("deny_list_other", {}, {}, {"deny_symbols": frozenset({"ETH"})}, ()),
    ("deny_list_hit", {}, {}, {"deny_symbols": frozenset({"btc"})}, ("symbol_denied",)),
    ("allow_list_hit", {}, {}, {"allow_symbols": frozenset({"BTC", "SOL"})}, ()),
    ("allow_list_miss", {}, {}, {"allow_symbols": frozenset({"ETH"})}, ("symbol_not_allowed",)),
    ("cooldown_elapsed", {}, {"failed_entry_ts_ms": {("BTC", "A", "B"): NOW - 3_600_000}}, {}, ()),
    ("cooldown_running", {}, {"failed_entry_ts_ms": {("BTC", "A", "B"): NOW - 3_599_999}}, {}, ("pair_cooldown",)),
    ("cooldown_other_pair", {}, {"failed_entry_ts_ms": {("BTC", "B", "A"): NOW}}, {}, ()),
    ("breaker_other_venue", {}, {"venue_breakers_open": frozenset({"C"})}, {}, ()),
    ("breaker_short_venue", {}, {"venue_breakers_open": frozenset({"B"})}, {}, ("venue_breaker_open",)),
    ("state_reducing", {}, {"trading_state": TradingState.REDUCING}, {}, ("trading_state",)),
    ("state_halted", {}, {"trading_state": TradingState.HALTED}, {}, ("trading_state",)),
]


@pytest.mark.parametrize(
    "opp_over, ctx_over, limits_over, expected",
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_gate(opp_over, ctx_over, limits_over, expected):
    got = codes(make_opp(**opp_over), make_ctx(**ctx_over), EntryLimits(**limits_over))
    assert got == expected


def test_every_denial_is_listed_in_gate_order():
    opp = make_opp(expected_net=D("0"), breakeven_hours=None, notional_usd=D("5000"))
    ctx = make_ctx(
        trading_state=TradingState.HALTED,
        long_quote_age_ms=None,
        short_slippage_bps=D("50"),
        venue_breakers_open=frozenset({"A", "B"}),
    )
    got = codes(opp, ctx, EntryLimits(deny_symbols=frozenset({"BTC"})))
    assert got == (
        "trading_state",
        "symbol_denied",
        "venue_breaker_open",
        "venue_breaker_open",
        "net_below_min",
        "breakeven_too_long",
        "notional_cap_position",
        "notional_cap_venue",  # A: 500 + 5000
        "notional_cap_venue",  # B: 0 + 5000
        "notional_cap_total",
        "leverage",  # A: 5500 on 1000
        "leverage",  # B: 5000 on 1000
        "free_margin",  # 800 - 1666.67
        "free_margin",
        "stale_quote",
        "slippage",
    )


def test_denial_details_name_the_numbers():
    decision = evaluate_entry(make_opp(expected_net=D("0.5")), make_ctx(), EntryLimits())
    assert decision.denials[0].code is DenialCode.NET_BELOW_MIN
    assert "0.5" in decision.denials[0].detail and "1" in decision.denials[0].detail


def test_context_mappings_are_copied_and_read_only():
    equity = {"A": D("1000"), "B": D("1000")}
    ctx = make_ctx(equity_by_venue_usd=equity)
    equity["B"] = D("0")
    assert ctx.equity_by_venue_usd["B"] == D("1000")
    with pytest.raises(TypeError):
        ctx.equity_by_venue_usd["B"] = D("0")  # type: ignore[index]


@pytest.mark.parametrize(
    "bad",
    [{"max_leverage": D("0")}, {"max_positions": -1}, {"max_quote_age_ms": -1}, {"pair_cooldown_ms": -5}],
)
def test_limits_reject_nonsense(bad):
    with pytest.raises(ValueError):
        EntryLimits(**bad)


def test_orphaned_symbol_is_denied_until_resolved() -> None:
    denied = evaluate_entry(make_opp(), make_ctx(orphaned_symbols=frozenset({"btc"})), EntryLimits())
    assert denied.codes == (DenialCode.ORPHAN_EXPOSURE,)
    assert "no position owns" in denied.denials[0].detail
    other = evaluate_entry(make_opp(), make_ctx(orphaned_symbols=frozenset({"ETH"})), EntryLimits())
    assert other.allowed
