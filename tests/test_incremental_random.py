"""Randomised: after every market update the incremental top-n equals a full ranking.

A small synthetic universe (books, instruments, fees; some symbols identical so nets tie) takes
random updates: funding-rate moves (small, large, ties), book moves and depth changes, quotes and
books disappearing and coming back, quotes and books going stale (re-stamped old, or simply left
behind while the clock runs), unusable and misfiled quotes, instrument changes, and a feed
heartbeat that refreshes many keys at once. A share of the updates targets the symbols of the
current top and the held positions' symbols. After each update ``IncrementalRanker.top(n)`` must
equal ``full_rank(snapshot, settings, n)`` exactly (every field of every opportunity, in order).

With ``live_books`` the market behaves as a live feed does: a book moves, goes stale or disappears
without a new quote object, and the ranker is told only the keys whose quote or instrument changed
(``RankingSource`` compares quote identity); the ranker must notice the books itself. Found in an
emulator rehearsal of ``--live``: the periodic cross-check logged differences when ccxt venues'
books moved between two funding polls.

The driver is checked to catch a pruning error: a ranker whose pending bounds are too low (so it
skips symbols that do reach the top) must be reported as different.
"""

from __future__ import annotations

import dataclasses
import random
from decimal import Decimal

import pytest

from bot.core.domain import (
    BookLevel,
    ExecutionMode,
    FeeSchedule,
    FundingQuote,
    Instrument,
    MarketSnapshot,
    OrderBook,
    PairKind,
)
from bot.incremental import IncrementalRanker, RankSettings, full_rank

START_MS = 1_772_323_200_000
MAX_AGE_MS = 60_000
VENUES = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")
FEES = {"alpha": ("2", "5"), "bravo": ("0", "0"), "charlie": ("1.5", "4.5"), "delta": ("-0.5", "3"),
        "echo": ("2", "5.5"), "foxtrot": ("0.3", "2")}


class Market:
    """A mutable synthetic market; ``snapshot()`` freezes it (new dicts: one consistent view)."""

    def __init__(self, rng: random.Random, n_symbols: int, venues: tuple[str, ...], *, books: bool = True,
                 spot: bool = False, bad_quotes: bool = True, live_books: bool = False) -> None:
        self.rng = rng
        self.live_books = live_books  # books change without new quotes, and nobody is told
        self.bad_quotes = bad_quotes  # NaN rates and zero intervals (the adapters reject them before a strategy)
        self.now = START_MS
        self.with_books = books
        self.venues = list(venues) + (["alpha:spot", "bravo:spot"] if spot else [])
        self.fees = {v: FeeSchedule(Decimal(FEES[v.split(":")[0]][0]), Decimal(FEES[v.split(":")[0]][1]))
                     for v in self.venues}
        self.quotes: dict[tuple[str, str], FundingQuote] = {}
        self.books: dict[tuple[str, str], OrderBook] = {}
        self.instruments: dict[tuple[str, str], Instrument] = {}
        self.price: dict[str, Decimal] = {}
        self.symbols = [f"S{k:03d}" for k in range(n_symbols)]
        for k, symbol in enumerate(self.symbols):
            if k % 7 == 1:  # an exact copy of the previous symbol: equal nets, ranked by name
                prev = self.symbols[k - 1]
                self.price[symbol] = self.price[prev]
                for venue in self.venues:
                    for table in (self.quotes, self.books, self.instruments):
                        if (venue, prev) in table:
                            table[(venue, symbol)] = dataclasses.replace(table[(venue, prev)], symbol=symbol)
                continue
            self.price[symbol] = Decimal(rng.choice([1, 7, 30, 250, 4000])) + Decimal(rng.randint(0, 999)) / 1000
            base = rng.gauss(0.1, 0.25)
            for venue in self.venues:
                if rng.random() < 0.1:
                    continue  # not listed there
                self.instruments[(venue, symbol)] = self._instrument(venue, symbol)
                self.set_quote(venue, symbol, self._rate(venue, base))
                self.set_book(venue, symbol)

    # ------------------------------------------------------------------ building blocks
    def _instrument(self, venue: str, symbol: str) -> Instrument:
        lot = Decimal(1).scaleb(self.rng.choice([-3, -2, -1, 0]))
        return Instrument(venue, symbol, f"{symbol}-X", Decimal("0.001"), lot, lot, Decimal(8),
                          Decimal(self.rng.choice([0, 5])))

    def _rate(self, venue: str, base: float) -> Decimal:
        if venue.endswith(":spot"):
            return Decimal(0)
        if self.rng.random() < 0.15:  # on a coarse grid: equal rates (direction ties) happen
            return Decimal(self.rng.randint(-3, 6)).scaleb(-5)
        return Decimal(round((base + self.rng.gauss(0, 0.2)) / 1095 * 1e8)).scaleb(-8)

    def set_quote(self, venue: str, symbol: str, rate: Decimal, *, ts_ms: int | None = None,
                  mark: Decimal | None = None) -> None:
        interval = Decimal(1) if venue.endswith(":spot") else Decimal(8)
        self.quotes[(venue, symbol)] = FundingQuote(
            venue, symbol, rate, interval, self.now + 3_600_000,
            mark if mark is not None else self.price[symbol], self.now if ts_ms is None else ts_ms)

    def set_book(self, venue: str, symbol: str, *, ts_ms: int | None = None, shallow: bool = False,
                 crossed: bool = False) -> None:
        rng, price = self.rng, self.price[symbol]
        mid = price * (1 + Decimal(rng.randint(-40, 40)) / 100_000)
        tick = price / 10_000
        half = tick * rng.randint(1, 4)
        bids, asks = [], []
        bid, ask = (mid + half, mid - half) if crossed else (mid - half, mid + half)
        for _ in range(2 if shallow else rng.randint(3, 8)):
            size = Decimal(rng.randint(1, 60) if shallow else rng.randint(200, 40_000)) / price
            bids.append(BookLevel(bid.quantize(tick), size.quantize(Decimal("0.001"))))
            asks.append(BookLevel(ask.quantize(tick), size.quantize(Decimal("0.001"))))
            bid -= tick * rng.randint(1, 5)
            ask += tick * rng.randint(1, 5)
        self.books[(venue, symbol)] = OrderBook(venue, symbol, tuple(bids), tuple(asks),
                                                self.now if ts_ms is None else ts_ms)

    def snapshot(self) -> MarketSnapshot:
        return MarketSnapshot(self.now, dict(self.quotes), dict(self.books) if self.with_books else {},
                              dict(self.instruments), dict(self.fees))

    # ------------------------------------------------------------------ one random update
    def update(self, targets: list[str]) -> set[tuple[str, str]]:
        """Apply one random change; returns the keys whose quote, book or instrument changed."""
        rng = self.rng
        symbol = rng.choice(targets) if targets and rng.random() < 0.4 else rng.choice(self.symbols)
        venue = rng.choice(self.venues)
        key = (venue, symbol)
        quote = self.quotes.get(key)
        action = rng.random()
        if action < 0.04:  # the clock runs: quotes and books nobody refreshed age (and go stale)
            self.now += rng.randint(1_000, 25_000)
            return set()
        if action < 0.08:  # a feed heartbeat: many keys re-stamped at once
            keys = rng.sample(sorted(self.quotes), min(len(self.quotes), rng.randint(20, 120)))
            for k in keys:
                self.quotes[k] = dataclasses.replace(self.quotes[k], ts_ms=self.now)
                if k in self.books:
                    self.books[k] = dataclasses.replace(self.books[k], ts_ms=self.now)
            return set(keys)
        if quote is None:  # (re)listed
            if key not in self.instruments:
                self.instruments[key] = self._instrument(venue, symbol)
            self.set_quote(venue, symbol, self._rate(venue, 0.1))
            self.set_book(venue, symbol)
            return {key}
        if action < 0.55:  # a funding-rate move
            step = rng.choice([Decimal("0.0000001"), Decimal("0.000002"), Decimal("0.00003")])
            rate = quote.rate_per_interval + step * rng.randint(-10, 10)
            if rng.random() < 0.1:
                rate = Decimal(rng.randint(-3, 6)).scaleb(-5)  # onto the grid: ties
            self.quotes[key] = dataclasses.replace(quote, rate_per_interval=rate, ts_ms=self.now)
        elif action < 0.72:  # the book moves (a simulated feed issues a new quote with it, a live one not)
            self.set_book(venue, symbol, shallow=rng.random() < 0.1, crossed=rng.random() < 0.03)
            if self.live_books:
                return set()
            self.quotes[key] = dataclasses.replace(quote, ts_ms=self.now)
        elif action < 0.77:  # the venue stops quoting it
            del self.quotes[key]
            self.books.pop(key, None)
        elif action < 0.81:  # an old quote arrives late (stale at once)
            self.quotes[key] = dataclasses.replace(quote, ts_ms=self.now - MAX_AGE_MS - rng.randint(1, 5_000))
        elif action < 0.84:  # the book goes stale (or disappears) while the quote stays fresh
            if rng.random() < 0.5:
                self.books.pop(key, None)
            elif key in self.books:
                self.books[key] = dataclasses.replace(self.books[key], ts_ms=self.now - MAX_AGE_MS - 1)
            if self.live_books:
                return set()
            self.quotes[key] = dataclasses.replace(quote, ts_ms=self.now)
        elif action < 0.87:  # an unusable rate (NaN) or a non-positive interval
            if not self.bad_quotes:
                return set()
            bad = rng.choice([dict(rate_per_interval=Decimal("NaN")), dict(interval_hours=Decimal(0))])
            self.quotes[key] = dataclasses.replace(quote, ts_ms=self.now, **bad)
        elif action < 0.89:  # a quote filed under another venue's key (never a leg)
            other = rng.choice(self.venues)
            if (other, symbol) in self.quotes and other != venue:
                self.quotes[key] = self.quotes[(other, symbol)]
            else:
                return set()
        elif action < 0.93:  # lot rules change (or the instrument is delisted)
            if rng.random() < 0.2:
                self.instruments.pop(key, None)
            else:
                self.instruments[key] = self._instrument(venue, symbol)
        elif action < 0.96:  # the mark moves (estimated costs, divergence gate)
            mark = quote.mark_price * (1 + Decimal(rng.choice([-1, 1]) * rng.choice([1, 10, 400])) / 10_000)
            self.quotes[key] = dataclasses.replace(quote, mark_price=mark, ts_ms=self.now)
        else:  # a second, equal-valued quote object (changed identity, same content)
            self.quotes[key] = dataclasses.replace(quote)
        return {key}


def drive(ranker_factory, settings: RankSettings, *, seed: int, symbols: int = 40, updates: int = 300, n: int = 5,
          books: bool = True, spot: bool = False, live_books: bool = False) -> tuple[int, str | None]:
    """Run ``updates`` random updates; returns (comparisons, first difference or None)."""
    rng = random.Random(seed)
    market = Market(rng, symbols, VENUES, books=books, spot=spot, live_books=live_books)
    snapshot = market.snapshot()
    ranker: IncrementalRanker = ranker_factory(settings)
    ranker.rebuild(snapshot)
    first = full_rank(snapshot, settings, n)
    held = sorted({o.symbol for o in first[:3]})
    compared = 0
    for step in range(updates):
        top_symbols = [o.symbol for o in first] + held
        changed = market.update(top_symbols)
        snapshot = market.snapshot()
        ranker.apply(snapshot, changed)
        k = rng.randint(1, n)
        mine, full = ranker.top(snapshot, k), full_rank(snapshot, settings, k)
        compared += 1
        if mine != full:
            return compared, f"seed {seed} step {step} top({k}): incremental {mine} != full {full}"
        first = full if k == n else full_rank(snapshot, settings, n)
    return compared, None


def _ranker(settings: RankSettings) -> IncrementalRanker:
    return IncrementalRanker(settings, per_symbol=5)


SETTINGS = RankSettings(notional_usd=Decimal(1000), horizon_hours=Decimal(72), max_quote_age_ms=MAX_AGE_MS)


@pytest.mark.parametrize("seed", range(6))
def test_every_update_keeps_top_n_equal_to_a_full_ranking(seed: int) -> None:
    compared, difference = drive(_ranker, SETTINGS, seed=seed)
    assert difference is None, difference
    assert compared == 300


@pytest.mark.parametrize("seed", range(3))
def test_with_a_net_floor_every_update_stays_equal(seed: int) -> None:
    rng = random.Random(100 + seed)
    market = Market(rng, 40, VENUES)
    unfloored = full_rank(market.snapshot(), SETTINGS, 12)
    floor = unfloored[rng.randint(0, len(unfloored) - 1)].expected_net
    _, difference = drive(_ranker, dataclasses.replace(SETTINGS, min_expected_net_usd=floor), seed=100 + seed)
    assert difference is None, difference


@pytest.mark.parametrize("seed", range(2))
def test_without_books_estimated_costs_stay_equal(seed: int) -> None:
    _, difference = drive(_ranker, SETTINGS, seed=200 + seed, books=False)
    assert difference is None, difference


def test_maker_taker_execution_and_spot_carry_stay_equal() -> None:
    settings = dataclasses.replace(SETTINGS, execution=ExecutionMode.MAKER_TAKER,
                                   pair_kinds=frozenset({PairKind.PERP_PERP, PairKind.SPOT_PERP}))
    _, difference = drive(_ranker, settings, seed=300, spot=True)
    assert difference is None, difference
    _, difference = drive(_ranker, SETTINGS, seed=301, spot=True)  # spot quotes present, carry off
    assert difference is None, difference


@pytest.mark.parametrize("seed", range(4))
def test_live_book_changes_without_new_quotes_stay_equal(seed: int) -> None:
    """A live feed moves books between funding polls: no new quote, ``apply`` not told."""
    compared, difference = drive(_ranker, SETTINGS, seed=500 + seed, live_books=True)
    assert difference is None, difference
    assert compared == 300


def test_live_book_changes_with_a_net_floor_and_spot_carry_stay_equal() -> None:
    rng = random.Random(600)
    unfloored = full_rank(Market(rng, 40, VENUES).snapshot(), SETTINGS, 12)
    floor = unfloored[len(unfloored) // 2].expected_net
    _, difference = drive(_ranker, dataclasses.replace(SETTINGS, min_expected_net_usd=floor), seed=600,
                          live_books=True)
    assert difference is None, difference
    settings = dataclasses.replace(SETTINGS, pair_kinds=frozenset({PairKind.PERP_PERP, PairKind.SPOT_PERP}))
    _, difference = drive(_ranker, settings, seed=601, spot=True, live_books=True)
    assert difference is None, difference


def test_fee_schedule_change_rebuilds_and_stays_equal() -> None:
    rng = random.Random(400)
    market = Market(rng, 30, VENUES)
    ranker = _ranker(SETTINGS)
    ranker.rebuild(market.snapshot())
    assert ranker.top(market.snapshot(), 5) == full_rank(market.snapshot(), SETTINGS, 5)
    market.fees["bravo"] = FeeSchedule(Decimal(3), Decimal(9))  # the zero-fee venue starts charging
    snapshot = market.snapshot()
    ranker.apply(snapshot, set())
    assert ranker.top(snapshot, 5) == full_rank(snapshot, SETTINGS, 5)


class _TooLowBound(IncrementalRanker):
    """A broken ranker: its pending bounds are 40 % too low, so it prunes symbols that do reach the top."""

    def _usd_bound(self, score: Decimal) -> Decimal:
        bound = super()._usd_bound(score)
        return bound * Decimal("0.6") if bound > 0 else bound


class _NoThreshold(IncrementalRanker):
    """A broken ranker: stops resolving as soon as it has n exact results (ignores better bounds)."""

    def _resolve(self, snapshot: MarketSnapshot, n: int) -> None:
        heap, live = self._heap, self._live
        import heapq

        while heap and len(self._exact) < n:
            entry = heapq.heappop(heap)
            if not live(entry):
                continue
            state = entry[3]
            if entry[2] == 0:
                self._look(snapshot, state, n)
                continue
            _, _, long_rec, short_rec = state.pairs[state.pos]
            state.pos += 1
            self._push_pairs_head(state)
            self._evaluate_pair(snapshot, state, long_rec, short_rec)


@pytest.mark.parametrize("broken", [_TooLowBound, _NoThreshold])
def test_the_driver_catches_a_pruning_error(broken) -> None:
    found = [drive(lambda s: broken(s, per_symbol=5), SETTINGS, seed=seed)[1] for seed in range(3)]
    assert any(difference is not None for difference in found), "a broken pruning must be caught"
