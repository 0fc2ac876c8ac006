"""bot/exit_watch.py: the kept exit decisions equal ``plan_exits`` after every market update."""

from __future__ import annotations

import dataclasses
import random
from decimal import Decimal

import pytest

from bot.app import strategy_params
from bot.exit_watch import ExitWatch
from bot.incremental import IncrementalRanker, RankSettings
from bot.settings import Settings
from bot.strategy import HeldView, plan_exits
from tests.test_incremental_random import MAX_AGE_MS, START_MS, VENUES, Market

PARAMS = dataclasses.replace(strategy_params(Settings()), max_quote_age_ms=MAX_AGE_MS)
SETTINGS = RankSettings(notional_usd=Decimal(1000), horizon_hours=Decimal(72), max_quote_age_ms=MAX_AGE_MS)


def _held(market: Market, rng: random.Random, count: int) -> list[HeldView]:
    """Positions on random pairs, some entered long ago (past the minimum hold), some with a leg gone."""
    views = []
    for n in range(count):
        symbol = rng.choice(market.symbols)
        long_venue, short_venue = rng.sample(VENUES, 2)
        size = Decimal(rng.randint(1, 400)) / 10
        views.append(HeldView(
            position_id=f"p{n}", symbol=symbol, long_venue=long_venue, short_venue=short_venue, size_base=size,
            entry_spread_hourly=Decimal(rng.randint(-5, 40)).scaleb(-6),
            entry_ts_ms=START_MS - rng.choice([3_600_000, 30 * 3_600_000, 9 * 86_400_000]),
            notional_usd=size * market.price[symbol], accrued_funding_usd=Decimal(rng.randint(-50, 200)) / 10,
            fees_paid_usd=Decimal(rng.randint(0, 30)) / 10,
            long_venue_size_base=rng.choice([None, size, size, Decimal(0), size * Decimal("0.9")]),
            short_venue_size_base=rng.choice([None, -size, -size, Decimal(0)])))
    return views


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("told", [True, False], ids=["changed-symbols-told", "inputs-checked"])
def test_every_update_plans_the_exits_plan_exits_plans(seed: int, told: bool) -> None:
    rng = random.Random(seed)
    market = Market(rng, 30, VENUES, bad_quotes=False)
    snapshot = market.snapshot()
    ranker = IncrementalRanker(SETTINGS)
    ranker.rebuild(snapshot)
    held = _held(market, rng, 8)
    top = ranker.top(snapshot, 5)
    # Also hold the current best symbols: their updates move the rotate rule's alternative too.
    held += [HeldView(f"t{n}", o.symbol, o.long_venue, o.short_venue, o.size_base, o.spread_hourly,
                      START_MS - 30 * 3_600_000, o.notional_usd, Decimal(0), Decimal(0)) for n, o in enumerate(top[:2])]
    watch = ExitWatch(PARAMS, held)
    fired = 0
    for step in range(250):
        changed = market.update([v.symbol for v in held])
        snapshot = market.snapshot()
        ranker.apply(snapshot, changed)
        best = (ranker.top(snapshot, 1) or [None])[0]
        if step % 40 == 39:  # a position closes, another opens
            held = held[1:] + _held(market, rng, 1)
            held[-1] = dataclasses.replace(held[-1], position_id=f"n{step}")
            watch.set_held(held)
        symbols = {symbol for _, symbol in changed} if told else None
        mine = watch.plan(snapshot, best, symbols)
        assert mine == plan_exits(snapshot, held, PARAMS, best), f"seed {seed} step {step}"
        fired += len(mine)
    assert fired > 0, "some exits fire (the comparison is not only of empty lists)"
    assert watch.repriced < 250 * len(held) / 2, "most updates re-price no position"


def test_a_position_not_told_about_keeps_its_priced_view() -> None:
    """With ``changed_symbols`` the watch trusts the caller: other positions are not looked at."""
    rng = random.Random(9)
    market = Market(rng, 10, VENUES, bad_quotes=False)
    held = _held(market, rng, 4)
    watch = ExitWatch(PARAMS, held)
    snapshot = market.snapshot()
    watch.plan(snapshot, None, None)
    before = watch.repriced
    watch.plan(snapshot, None, [held[0].symbol])
    assert watch.repriced - before == sum(1 for v in held if v.symbol == held[0].symbol)
