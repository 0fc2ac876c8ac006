"""Opportunity scanner: hand-computed rankings, skips, quote-only snapshots, and the pruned search
checked against brute force on random universes."""

from __future__ import annotations

import importlib.util
import random
import sys
from dataclasses import dataclass, replace
from decimal import Decimal as D
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.domain import (
    BPS,
    BookLevel,
    ExecutionMode,
    LegSide,
    FeeSchedule,
    FundingQuote,
    Instrument,
    Liquidity,
    MarketSnapshot,
    Opportunity,
    OrderBook,
)
from bot.core.maker_taker import choose_maker_leg
from bot.scanner import evaluate_pair, rank_opportunities, ranking_key

NOW = 1_700_000_000_000
MAX_AGE = 60_000
TAKER_5 = FeeSchedule(maker_bps=D(1), taker_bps=D(5))


@dataclass(frozen=True)
class Leg:
    venue: str
    symbol: str
    rate: str
    interval: str
    bid: str = "99.99"
    ask: str = "100.01"
    bid_depth: str = "1000"
    ask_depth: str = "1000"
    lot: str = "0.001"
    min_size: str = "0.001"
    min_notional: str = "0"
    quote_age_ms: int = 0
    book_age_ms: int = 0
    mark: str | None = None  # default: the book mid
    with_book: bool = True
    with_instrument: bool = True


def snapshot(legs: list[Leg], fees: dict[str, FeeSchedule] | None = None, *, books: bool = True) -> MarketSnapshot:
    quotes, book_map, instruments = {}, {}, {}
    for leg in legs:
        key = (leg.venue, leg.symbol)
        mark = D(leg.mark) if leg.mark is not None else (D(leg.bid) + D(leg.ask)) / 2
        quotes[key] = FundingQuote(leg.venue, leg.symbol, D(leg.rate), D(leg.interval), NOW + 3_600_000, mark,
                                   NOW - leg.quote_age_ms)
        if books and leg.with_book:
            book_map[key] = OrderBook(leg.venue, leg.symbol, (BookLevel(D(leg.bid), D(leg.bid_depth)),),
                                      (BookLevel(D(leg.ask), D(leg.ask_depth)),), NOW - leg.book_age_ms)
        if leg.with_instrument:
            instruments[key] = Instrument(leg.venue, leg.symbol, f"{leg.symbol}USDT", D("0.01"), D(leg.lot),
                                          D(leg.min_size), D(leg.interval), D(leg.min_notional))
    if fees is None:
        fees = {leg.venue: TAKER_5 for leg in legs}
    return MarketSnapshot(NOW, quotes, book_map, instruments, fees)


def rank(snap: MarketSnapshot, **kwargs) -> list[Opportunity]:
    kwargs.setdefault("notional_usd", D(10_000))
    kwargs.setdefault("horizon_hours", D(168))
    kwargs.setdefault("max_quote_age_ms", MAX_AGE)
    return rank_opportunities(snap, **kwargs)


def pairs(opps: list[Opportunity]) -> list[tuple[str, str, str]]:
    return [(o.symbol, o.long_venue, o.short_venue) for o in opps]


# BTC on a 1 h venue (hl), an 8 h venue (bn) and a 4 h venue (ax); every book 99.99 / 100.01
# (mid 100), deep; 5 bp taker everywhere. Size = 10000 / 100 = 100 BTC, notional 10000.
# Costs of every pair: fees 0.0005 x (10001 + 9999) per leg = 10, x2 legs = 20;
# slippage (entry + exit) 100 x 0.02 per leg = 2, x2 = 4; basis 0 -> 24 USD.
MIXED = [
    Leg("hl", "BTC", "0.00002", "1"),  # 0.00002 / h
    Leg("bn", "BTC", "0.0001", "8"),  # 0.0000125 / h
    Leg("ax", "BTC", "0.0002", "4"),  # 0.00005 / h
]


def test_mixed_intervals_ranked_by_hourly_spread_after_round_trip_costs() -> None:
    opps = rank(snapshot(MIXED))
    # A naive per-interval comparison would pick long hl (0.00002) / short ax (0.0002) as the best.
    assert pairs(opps) == [("BTC", "bn", "ax"), ("BTC", "hl", "ax"), ("BTC", "bn", "hl")]
    best, second, third = opps
    # bn/ax: 0.0000375 / h x 168 h x 10000 = 63; 63 - 24 = 39; APR 0.0000375 x 8760; breakeven 24 / 0.375
    assert (best.spread_hourly, best.expected_net, best.apr, best.breakeven_hours) == (
        D("0.0000375"), D(39), D("0.3285"), D(64))
    # hl/ax: 0.00003 x 168 x 10000 = 50.4 - 24 = 26.4; breakeven 24 / 0.3 = 80 h
    assert (second.spread_hourly, second.expected_net, second.breakeven_hours) == (D("0.00003"), D("26.4"), D(80))
    # bn/hl: 0.0000075 x 168 x 10000 = 12.6 - 24 = -11.4; breakeven 24 / 0.075 = 320 h
    assert (third.spread_hourly, third.expected_net, third.breakeven_hours) == (D("0.0000075"), D("-11.4"), D(320))
    for opp in opps:
        assert (opp.costs, opp.fees_usd, opp.slippage_usd, opp.basis_usd) == (D(24), D(20), D(4), D(0))
        assert (opp.size_base, opp.notional_usd, opp.horizon_hours) == (D(100), D(10_000), D(168))
        assert (opp.long_price, opp.short_price) == (D("100.01"), D("99.99"))
        assert opp.costs_estimated is False
    assert (best.long_rate, best.long_interval_hours, best.short_rate, best.short_interval_hours) == (
        D("0.0001"), D(8), D("0.0002"), D(4))


def test_long_on_the_negative_rate_venue_earns() -> None:
    # X pays longs 0.0004 per 8 h (-0.00005 / h); Y charges longs 0.00001 / h. Long X / short Y:
    # spread 0.00001 + 0.00005 = 0.00006 / h x 168 x 10000 = 100.8; minus 24 -> 76.8
    opps = rank(snapshot([Leg("x", "ETH", "-0.0004", "8"), Leg("y", "ETH", "0.00001", "1")]))
    assert pairs(opps) == [("ETH", "x", "y")]
    assert (opps[0].spread_hourly, opps[0].expected_net) == (D("0.00006"), D("76.8"))
    # both negative: the short leg PAYS 0.00001 / h, the long receives 0.00005 / h -> 0.00004 / h
    both = rank(snapshot([Leg("x", "ETH", "-0.0004", "8"), Leg("y", "ETH", "-0.00001", "1")]))
    assert pairs(both) == [("ETH", "x", "y")]
    assert (both[0].spread_hourly, both[0].expected_net) == (D("0.00004"), D("43.2"))  # 67.2 - 24


def _reference_module():
    path = Path(__file__).resolve().parents[1] / "bench" / "hummingbot_reference.py"
    spec = importlib.util.spec_from_file_location("hummingbot_reference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("hummingbot_reference", module)
    spec.loader.exec_module(module)
    return module


HB_FEES = {"binance": FeeSchedule(D(2), D(5)), "hyperliquid": FeeSchedule(D("1.5"), D("4.5"))}


def test_hummingbot_formula_calls_a_losing_trade_profitable() -> None:
    # Locked books at 100 (no slippage, no basis). hyperliquid charges longs 0.00005 / h, binance 0.
    snap = snapshot([Leg("hyperliquid", "WIF", "0.00005", "1", bid="100", ask="100"),
                     Leg("binance", "WIF", "0", "8", bid="100", ask="100")], HB_FEES)
    ref = _reference_module().reference_rank(snap, tokens=["WIF"], connectors=["binance", "hyperliquid"],
                                             position_size_quote=D(10_000))
    # Hummingbot: per-day spread |0/28800 - 0.00005/3600| x 86400 = 0.0012, entry taker fees
    # 0.0005 + 0.00045 = 0.00095 -> net +0.00025 of notional: "profitable", enter.
    assert len(ref) == 1 and (ref[0].long_connector, ref[0].short_connector) == ("binance", "hyperliquid")
    assert abs(ref[0].funding_profitability - D("0.0012")) < D("1e-20")
    assert abs(ref[0].net_profitability - D("0.00025")) < D("1e-20")
    # Ours over the same 24 h: income 0.00005 x 24 x 10000 = 12; fees entry AND exit:
    # binance 0.0005 x 20000 = 10, hyperliquid 0.00045 x 20000 = 9 -> net 12 - 19 = -7.
    (opp,) = rank(snap, horizon_hours=D(24))
    assert (opp.long_venue, opp.short_venue, opp.costs, opp.expected_net) == ("binance", "hyperliquid", D(19), D(-7))
    assert opp.breakeven_hours == D(38)  # 19 / (0.00005 x 10000)


def test_hummingbot_ranks_differently_with_per_symbol_intervals() -> None:
    # binance lists AAA on 4 h and BBB on 8 h; Hummingbot assumes 8 h for every binance symbol.
    snap = snapshot([Leg("hyperliquid", "AAA", "0", "1"), Leg("binance", "AAA", "0.0002", "4"),
                     Leg("hyperliquid", "BBB", "0", "1"), Leg("binance", "BBB", "0.0003", "8")], HB_FEES)
    ref = _reference_module().reference_rank(snap, tokens=["AAA", "BBB"], connectors=["binance", "hyperliquid"],
                                             position_size_quote=D(10_000))
    # Hummingbot: AAA 0.0002 / 8 h x 24 = 0.0006 / day < BBB 0.0003 / 8 h x 24 = 0.0009 / day
    assert [c.token for c in ref] == ["BBB", "AAA"]
    # Truth: AAA pays 0.0002 / 4 h = 0.00005 / h > BBB 0.0000375 / h; same costs -> AAA first.
    opps = rank(snap)
    assert pairs(opps) == [("AAA", "hyperliquid", "binance"), ("BBB", "hyperliquid", "binance")]
    assert (opps[0].spread_hourly, opps[1].spread_hourly) == (D("0.00005"), D("0.0000375"))


def test_insufficient_depth_skips_the_pair_for_entry_and_for_exit() -> None:
    legs = MIXED + [
        Leg("thin", "BTC", "0.001", "8", ask_depth="10", bid_depth="10"),  # 10 BTC a side, size is 100
        Leg("noexit", "BTC", "-0.001", "8", bid_depth="50"),  # the long leg's exit (sell 100) lacks bids
    ]
    opps = rank(snapshot(legs))
    venues = {v for o in opps for v in (o.long_venue, o.short_venue)}
    assert venues == {"hl", "bn", "ax"}
    assert pairs(opps) == pairs(rank(snapshot(MIXED)))


def test_stale_quotes_and_books_are_skipped() -> None:
    legs = [replace(MIXED[0], quote_age_ms=MAX_AGE + 1), replace(MIXED[1], book_age_ms=MAX_AGE + 1), MIXED[2]]
    assert rank(snapshot(legs)) == []
    on_the_limit = [replace(leg, quote_age_ms=MAX_AGE, book_age_ms=MAX_AGE) for leg in MIXED]
    assert pairs(rank(snapshot(on_the_limit))) == pairs(rank(snapshot(MIXED)))
    only_ax_stale = [MIXED[0], MIXED[1], replace(MIXED[2], quote_age_ms=10 * MAX_AGE)]
    assert pairs(rank(snapshot(only_ax_stale))) == [("BTC", "bn", "hl")]


def test_one_venue_symbols_and_empty_snapshots_give_no_pairs() -> None:
    assert rank(snapshot([Leg("hl", "SOLO", "0.01", "1")])) == []
    assert rank(MarketSnapshot(NOW)) == []
    opps = rank(snapshot(MIXED + [Leg("hl", "SOLO", "0.01", "1")]))
    assert "SOLO" not in {o.symbol for o in opps} and len(opps) == 3


@pytest.mark.parametrize(
    ("lot_a", "lot_b", "size"),
    [
        ("0.001", "0.1", "33.3"),  # 1000 / 30 = 33.333... -> the coarser step 0.1
        ("0.1", "0.001", "33.3"),
        ("0.02", "0.03", "33.30"),  # neither divides the other: their common multiple 0.06 x 555
        ("1", "0.001", "33"),
    ],
)
def test_size_rounds_down_to_the_coarser_lot_step(lot_a: str, lot_b: str, size: str) -> None:
    legs = [Leg("a", "SOL", "0", "8", bid="29.99", ask="30.01", lot=lot_a),
            Leg("b", "SOL", "0.001", "8", bid="29.99", ask="30.01", lot=lot_b)]
    (opp,) = rank(snapshot(legs), notional_usd=D(1000))
    assert opp.size_base == D(size)
    assert opp.notional_usd == D(size) * 30  # per-leg notional at the mid, never above the request


@pytest.mark.parametrize(("field", "value"), [("min_size", "50"), ("min_notional", "1000")])
def test_size_below_a_venue_minimum_skips_the_pair(field: str, value: str) -> None:
    # size 33.3 SOL = 999 USD: below a 50 SOL minimum, below a 1000 USD minimum notional
    legs = [Leg("a", "SOL", "0", "8", bid="29.99", ask="30.01"),
            replace(Leg("b", "SOL", "0.001", "8", bid="29.99", ask="30.01", lot="0.1"), **{field: value})]
    assert rank(snapshot(legs), notional_usd=D(1000)) == []


def test_quote_only_snapshot_uses_marks_and_estimated_slippage() -> None:
    snap = snapshot(MIXED, books=False)
    opps = rank(snap)
    assert pairs(opps) == pairs(rank(snapshot(MIXED)))
    # marks 100: size 100, notional 10000. Fees 0.0005 x 10000 x 4 executions = 20;
    # slippage 2 bp x 10000 x 4 executions = 8; basis 0 -> 28. bn/ax: 63 - 28 = 35.
    best = opps[0]
    assert (best.costs_estimated, best.costs, best.fees_usd, best.slippage_usd, best.expected_net) == (
        True, D(28), D(20), D(8), D(35))
    assert (best.long_price, best.short_price) == (D(100), D(100))
    no_slip = rank(snap, estimated_slippage_bps=D(0))[0]
    assert (no_slip.costs, no_slip.expected_net) == (D(20), D(43))


def test_quote_only_snapshot_without_instruments_and_adverse_marks() -> None:
    legs = [replace(leg, with_instrument=False, mark=mark) for leg, mark in zip(MIXED, ["100", "100.1", "100"])]
    opps = rank(snapshot(legs, books=False))
    best = opps[0]
    assert (best.long_venue, best.short_venue) == ("bn", "ax")
    # ref price (100.1 + 100) / 2 = 100.05; size unrounded 10000 / 100.05; notional back to 10000
    assert best.size_base == D(10_000) / D("100.05")
    assert abs(best.notional_usd - D(10_000)) < D("1e-20")
    # long bn marked 100.1 above short ax at 100: adverse basis 0.1 x size
    assert best.basis_usd == (D("100.1") - D(100)) * (best.size_base * D("100.1")) / D("100.1")
    assert best.costs_estimated


def test_quote_only_leg_without_a_mark_borrows_the_other_legs() -> None:
    # The shared history has mark prices for Binance only; a loader may leave the others at 0.
    legs = [replace(MIXED[0], mark="0"), replace(MIXED[1], mark="0"), MIXED[2]]
    opps = rank(snapshot(legs, books=False))
    # bn/ax and hl/ax are priced at ax's mark (100), as in the quote-only test; bn/hl has no price
    assert pairs(opps) == [("BTC", "bn", "ax"), ("BTC", "hl", "ax")]
    assert (opps[0].costs, opps[0].expected_net, opps[0].long_price) == (D(28), D(35), D(100))


def test_quote_only_snapshot_with_real_rows_shape() -> None:
    # The shape a history replay produces: quotes only, no books, no instruments, 8 h and 1 h venues.
    legs = [Leg("binance", sym, rate, "8", with_instrument=False, mark="50000") for sym, rate in
            [("BTC", "0.0001"), ("ETH", "-0.00005")]]
    legs += [Leg("hyperliquid", sym, rate, "1", with_instrument=False, mark="50000") for sym, rate in
             [("BTC", "0.00000125"), ("ETH", "0.0000125")]]
    opps = rank(snapshot(legs, HB_FEES, books=False), horizon_hours=D(72))
    assert [o.symbol for o in opps] == ["ETH", "BTC"]
    assert all(o.costs_estimated for o in opps)
    assert (opps[0].long_venue, opps[0].short_venue) == ("binance", "hyperliquid")


def test_bad_data_never_crashes_and_is_skipped() -> None:
    good = MIXED
    bad = [
        Leg("nan", "BTC", "NaN", "8"),
        Leg("inf", "BTC", "Infinity", "8"),
        Leg("zero", "BTC", "0.001", "0"),
        Leg("neg", "BTC", "0.001", "-8"),
        Leg("crossed", "BTC", "0.01", "8", bid="100.5", ask="100.4"),
        Leg("far", "BTC", "0.01", "8", bid="199.99", ask="200.01"),  # mids 100 vs 200: absurd
        Leg("nobook", "BTC", "0.01", "8", with_book=False),
        Leg("noinst", "BTC", "0.01", "8", with_instrument=False),
        Leg("nofees", "BTC", "0.01", "8"),
        Leg("zerolot", "BTC", "0.01", "8", lot="0"),
    ]
    fees = {leg.venue: TAKER_5 for leg in good + bad if leg.venue != "nofees"}
    snap = snapshot(good + bad, fees)
    assert pairs(rank(snap)) == pairs(rank(snapshot(good)))
    # NaN deep in a book
    deep_nan = OrderBook("hl", "BTC", (BookLevel(D("99.99"), D(1)), BookLevel(D("99.98"), D("NaN"))),
                         (BookLevel(D("100.01"), D(1)), BookLevel(D("100.02"), D("NaN"))), NOW)
    snap2 = replace(snapshot(good), books={**snapshot(good).books, ("hl", "BTC"): deep_nan})
    assert pairs(rank(snap2)) == [("BTC", "bn", "ax")]


def test_infinite_rates_on_every_leg_of_a_symbol_do_not_crash() -> None:
    # Every leg of a symbol at +Infinity (or -Infinity) once made its first bound inf - inf: raised.
    legs = MIXED + [Leg(v, symbol, rate, "8") for v in ("hl", "bn") for symbol, rate in
                    [("UP", "Infinity"), ("DOWN", "-Infinity")]]
    assert pairs(rank(snapshot(legs))) == pairs(rank(snapshot(MIXED)))


def test_quote_rate_per_hour_is_computed_once_when_the_quote_is_built() -> None:
    def quote(rate: object, interval: object) -> FundingQuote:
        return FundingQuote("v", "BTC", rate, interval, NOW, D(100), NOW)  # type: ignore[arg-type]

    assert quote(D("0.0001"), D(8)).hourly_rate_or_none == D("0.0000125")
    assert quote(D("-0.0004"), D(4)).hourly_rate_or_none == D("-0.0001")
    unusable = [(D("NaN"), D(8)), (D("sNaN"), D(8)), (D("Infinity"), D(8)), (D("0.001"), D(0)),
                (D("0.001"), D(-8)), (D("0.001"), D("NaN")), (D("0.001"), D("Infinity")), (0.0001, D(8)),
                (D("1e999999"), D("1e-999999"))]
    assert [quote(r, i).hourly_rate_or_none for r, i in unusable] == [None] * len(unusable)
    # hourly_rate keeps dividing (and raising) as before; the cached field is not part of equality
    assert quote(D("0.0001"), D(8)).hourly_rate == D("0.0000125")
    assert quote(D("0.001"), D(-8)).hourly_rate == D("-0.000125")
    with pytest.raises(ArithmeticError):
        quote(D("0.001"), D(0)).hourly_rate
    assert quote(D("0.0001"), D(8)) == quote(D("0.0001"), D("8.0"))
    changed = replace(quote(D("0.0001"), D(8)), interval_hours=D(1))
    assert changed.hourly_rate_or_none == D("0.0001")
    assert "hourly_rate_or_none" not in repr(changed)


def test_quote_filed_under_another_key_is_not_a_leg() -> None:
    # The ranking groups quotes by their own (venue, symbol); one filed under another symbol's key
    # is skipped by the ranking and by evaluate_pair alike.
    snap = snapshot(MIXED + [replace(leg, symbol="ETH") for leg in MIXED])
    hl_btc = snap.quotes[("hl", "BTC")]
    misfiled = replace(snap, quotes={**snap.quotes, ("hl", "ETH"): hl_btc})  # BTC's quote as hl/ETH's
    kwargs = {"notional_usd": D(10_000), "horizon_hours": D(168), "max_quote_age_ms": MAX_AGE}
    assert evaluate_pair(misfiled, "ETH", "hl", "ax", **kwargs) is None
    assert evaluate_pair(misfiled, "BTC", "hl", "ax", **kwargs) == evaluate_pair(snap, "BTC", "hl", "ax", **kwargs)
    expected = [p for p in pairs(rank(snap)) if p[0] == "BTC" or "hl" not in p[1:]]
    assert pairs(rank(misfiled)) == expected and len(expected) == 4
    # ... also when it is the only quote of its own venue and symbol (moved, not copied)
    moved = {k: q for k, q in misfiled.quotes.items() if k != ("hl", "BTC")}
    only_misfiled = replace(snap, quotes=moved)
    assert evaluate_pair(only_misfiled, "BTC", "hl", "ax", **kwargs) is None
    assert pairs(rank(only_misfiled)) == [p for p in pairs(rank(snap)) if "hl" not in p[1:]]


def test_parameters_limit_minimum_allowed_symbols_and_liquidity() -> None:
    legs = MIXED + [replace(leg, symbol="ETH") for leg in MIXED]
    snap = snapshot(legs)
    everything = rank(snap)
    # equal nets across BTC and ETH: ties broken by APR, then by names
    assert pairs(everything)[:2] == [("BTC", "bn", "ax"), ("ETH", "bn", "ax")]
    assert rank(snap, limit=0) == []
    assert rank(snap, limit=3) == everything[:3]
    assert pairs(rank(snap, min_expected_net_usd=D("26.4"))) == pairs(everything[:4])
    assert pairs(rank(snap, allowed_symbols={"ETH"})) == [p for p in pairs(everything) if p[0] == "ETH"]
    maker = rank(snap, liquidity=Liquidity.MAKER)[0]
    # maker 1 bp: fees 0.0001 x 20000 x 2 legs = 4; slippage 4 -> costs 8; 63 - 8 = 55
    assert (maker.fees_usd, maker.costs, maker.expected_net) == (D(4), D(8), D(55))
    for bad in ({"notional_usd": D(0)}, {"horizon_hours": D(-1)}, {"max_quote_age_ms": -1}, {"limit": -1},
                {"max_price_divergence": D(1)}, {"estimated_slippage_bps": D(-1)}):
        with pytest.raises(ValueError):
            rank(snap, **bad)


def test_evaluate_pair_matches_the_ranking_and_allows_the_losing_direction() -> None:
    snap = snapshot(MIXED)
    kwargs = {"notional_usd": D(10_000), "horizon_hours": D(168), "max_quote_age_ms": MAX_AGE}
    best = rank(snap, limit=1)[0]
    assert evaluate_pair(snap, "BTC", "bn", "ax", **kwargs) == best
    reverse = evaluate_pair(snap, "BTC", "ax", "bn", **kwargs)
    assert reverse is not None and reverse.spread_hourly == D("-0.0000375") and reverse.breakeven_hours is None
    assert reverse.expected_net == D(-63) - D(24)
    assert evaluate_pair(snap, "BTC", "bn", "bn", **kwargs) is None
    assert evaluate_pair(snap, "BTC", "bn", "missing", **kwargs) is None


# ------------------------------------------------------- pruned search == brute force

def random_universe(seed: int) -> MarketSnapshot:
    """Small random universes with the awkward cases mixed in (missing and stale data, thin books,
    coarse lots, equal rates, rebates)."""
    rng = random.Random(seed)
    venues = [f"v{i}" for i in range(rng.randint(2, 5))]
    fees = {v: FeeSchedule(D(rng.randint(-2, 3)), D(rng.randint(0, 8))) for v in venues if rng.random() > 0.1}
    quotes, books, instruments = {}, {}, {}
    for k in range(rng.randint(1, 7)):
        symbol = f"S{k}"
        price = rng.choice([D("0.5"), D(3), D(100), D(2500)])
        for venue in venues:
            if rng.random() < 0.15:
                continue
            interval = D(rng.choice([1, 4, 8]))
            rate = D(rng.choice([0, 0, rng.randint(-300, 300)])) * D("0.000001") * interval
            if rng.random() < 0.04:  # unusable: skipped by both the ranking and brute force
                rate, interval = rng.choice([(D("NaN"), interval), (D("Infinity"), interval),
                                             (D("-Infinity"), interval), (rate, D(0)), (rate, D(-4))])
            mid = price * (1 + D(rng.randint(-30, 30)) / 10_000)
            age = rng.choice([0, 0, 0, MAX_AGE + 1])
            mark = mid if rng.random() > 0.1 else D(0)  # books make marks irrelevant; replay borrows
            quotes[(venue, symbol)] = FundingQuote(venue, symbol, rate, interval, NOW, mark, NOW - age)
            if rng.random() < 0.9:
                half = price * D(rng.randint(0, 10)) / 10_000
                levels = rng.randint(1, 4)
                step = price / 1000
                depth = [D(rng.randint(1, 200)) / price * 100 for _ in range(levels)]
                bids = tuple(BookLevel(mid - half - step * i, depth[i]) for i in range(levels))
                asks = tuple(BookLevel(mid + half + step * i, depth[i]) for i in range(levels))
                books[(venue, symbol)] = OrderBook(venue, symbol, bids, asks, NOW - rng.choice([0, 0, MAX_AGE + 1]))
            if rng.random() < 0.95:
                lot = rng.choice([D("0.001"), D("0.01"), D("0.1"), D("0.02")])
                instruments[(venue, symbol)] = Instrument(venue, symbol, symbol, D("0.0001"), lot, lot, interval,
                                                          D(rng.choice([0, 0, 5])))
    return MarketSnapshot(NOW, quotes, books if rng.random() < 0.85 else {}, instruments, fees)


def brute_force(snap: MarketSnapshot, notional: D, horizon: D,
                execution: ExecutionMode = ExecutionMode.TAKER) -> list[Opportunity]:
    out = []
    symbols = sorted({s for _, s in snap.quotes})
    for symbol in symbols:
        venues = sorted(v for v, s in snap.quotes if s == symbol)
        for i, a in enumerate(venues):
            for b in venues[i + 1 :]:
                qa, qb = snap.quotes[(a, symbol)], snap.quotes[(b, symbol)]
                if not all(q.rate_per_interval.is_finite() and q.interval_hours > 0 for q in (qa, qb)):
                    continue
                ha, hb = qa.rate_per_interval / qa.interval_hours, qb.rate_per_interval / qb.interval_hours
                long_v, short_v = (a, b) if ha <= hb else (b, a)  # equal: long the name first (a < b)
                opp = evaluate_pair(snap, symbol, long_v, short_v, notional_usd=notional, horizon_hours=horizon,
                                    max_quote_age_ms=MAX_AGE, execution=execution)
                if opp is not None:
                    out.append(opp)
    return sorted(out, key=ranking_key)


@settings(max_examples=120, deadline=None)
@given(st.integers(0, 10**9), st.sampled_from([D(1), D(8), D(24), D(500)]), st.integers(1, 4))
def test_pruned_ranking_equals_brute_force(seed: int, horizon: D, limit: int) -> None:
    snap = random_universe(seed)
    notional = D(1_000)
    full = rank(snap, notional_usd=notional, horizon_hours=horizon)
    assert full == brute_force(snap, notional, horizon)
    reordered = replace(snap, quotes=dict(reversed(list(snap.quotes.items()))))  # e.g. venue- vs symbol-major
    assert rank(reordered, notional_usd=notional, horizon_hours=horizon) == full
    assert rank(snap, notional_usd=notional, horizon_hours=horizon, limit=limit) == full[:limit]
    threshold = full[len(full) // 2].expected_net if full else D(0)
    assert rank(snap, notional_usd=notional, horizon_hours=horizon, min_expected_net_usd=threshold) == [
        o for o in full if o.expected_net >= threshold]
    for opp in full:
        assert opp.costs == opp.fees_usd + opp.slippage_usd + opp.basis_usd
        assert opp.spread_hourly >= 0 and opp.notional_usd <= notional
        assert opp.costs_estimated == (not snap.books)


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 10**9), st.sampled_from([D(1), D(8), D(24), D(500)]))
def test_maker_taker_ranking_equals_brute_force_and_never_costs_more(seed: int, horizon: D) -> None:
    """In maker-taker execution the pruning bounds stay valid (same result as brute force) and every
    pair costs exactly its taker-taker cost minus the maker leg's entry-fee saving."""
    snap = random_universe(seed)
    notional = D(1_000)
    maker = rank(snap, notional_usd=notional, horizon_hours=horizon, execution=ExecutionMode.MAKER_TAKER)
    assert maker == brute_force(snap, notional, horizon, ExecutionMode.MAKER_TAKER)
    for opp in maker:
        taker = evaluate_pair(snap, opp.symbol, opp.long_venue, opp.short_venue, notional_usd=notional,
                              horizon_hours=horizon, max_quote_age_ms=MAX_AGE)
        assert taker is not None
        long_fees, short_fees = snap.fees[opp.long_venue], snap.fees[opp.short_venue]
        leg = choose_maker_leg(long_fees, short_fees)
        fees = long_fees if leg is LegSide.LONG else short_fees
        price = opp.long_price if leg is LegSide.LONG else opp.short_price
        saving = opp.size_base * price * (fees.taker_bps - fees.maker_bps) * BPS
        assert abs(opp.fees_usd - (taker.fees_usd - saving)) < D("1e-18")  # price = VWAP, rounded
        assert opp.slippage_usd == taker.slippage_usd and opp.basis_usd == taker.basis_usd
