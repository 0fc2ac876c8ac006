"""Incremental ranking: a market change re-evaluates only the pairs it touched (a layer over ``bot.scanner``).

The scanner ranks a whole snapshot by a best-first search over upper bounds. ``IncrementalRanker``
keeps that search alive between snapshots: one max-heap of bounds not resolved yet and one sorted
list of every pair evaluated exactly (``ranking_key`` order), both kept across market changes.

- A symbol's legs are first known by their quotes only (``h - c`` and ``h + c``: rate per hour and
  the venue's fee floor, no book read). While some of its legs have not been looked at, the symbol
  has one entry in the heap: an upper bound of every pair with such a leg.
- When that entry reaches the top, the changed legs are looked at closely (the scanner's
  ``_close_look``: book fresh and sane, spread), most promising first, until the pairs left with a
  leg not looked at cannot reach the ``n``-th exact net (those stay filed under their bound). Each
  new pair (a looked-at leg with any usable leg, in its profitable direction and an allowed kind)
  joins the symbol's list of pairs sorted by bound; the best of it is in the heap (the next enters
  when it pops, as in the scanner).
- When a pair reaches the top it is evaluated exactly (the scanner's sizing, book walk and
  ``Opportunity``; with books, the sizing and the walk are kept per pair and reused while its
  books and instruments are the same objects) and filed in the exact list.
- ``top(n)`` resolves entries until the best remaining bound is below the ``n``-th exact net
  (a bound equal to it is resolved: a tie may rank first by name) and returns the first ``n`` of
  the exact list.
- ``apply`` of a changed (venue, symbol) key drops that leg's pairs (their exact results and
  bounds) and files the symbol again under the bound of its changed legs. The other legs' pairs
  stay as they are: a quote change re-evaluates at most the changed leg's pairs, and only those
  whose bound can still reach the top ``n``; everything else costs a few comparisons.

Why that is exact: every valid pair (both legs usable, sized, costed, net at least the floor) is
always either in the exact list with its current result or covered by a live heap entry whose
bound is at least its net (the scanner's bounds, proven in ``bot.scanner``'s docstring). When
``top`` stops, every covered pair's net is below the ``n``-th exact net, so the first ``n`` exact
entries are the first ``n`` of a full ranking, ties included (``ranking_key`` is one total order).
Time enters only through freshness: a symbol is read again from the snapshot when its first
looked-at quote or book turns stale (a stale input never turns fresh again; quote-only bounds
only fall as quotes age). A change of fee schedules or costing mode (books or none), or a clock
going back, rebuilds. ``cross_check`` compares with a full ranking (start-up and periodically;
tests hold them equal after every update).

Contract: ``apply`` is told every key whose quote or instrument changed (``changed_keys`` compares
quote identity). Books need not be told: a live feed replaces a book many times between two funding
polls with the same quote object, and stops serving one that turned stale or disagrees with the
mark (``adapters.live.LiveMarketFeed.book``), so ``top`` reads again the snapshot's book of every
leg it looked at and re-files the legs whose book is not the object they were looked at with
(only looked-at legs depend on a book; the others are filed under quote-only bounds).
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal

from bot.core.domain import ZERO, ExecutionMode, Liquidity, MarketSnapshot, Opportunity, PairKind, is_spot, pair_kind
from bot.lazy_ranking import LazyRanking
from bot.scanner import (
    _BOOK,
    _HOURLY,
    _BOUND_SLACK,
    _LONG_COST,
    _SHORT_SCORE,
    _UNSEEN,
    DEFAULT_ESTIMATED_SLIPPAGE_BPS,
    DEFAULT_MAX_PRICE_DIVERGENCE,
    _close_look,
    _evaluate,
    _fee_terms,
    _opportunity,
    _pair_book_costs,
    _Params,
    _params,
    _size_pair,
    _sized,
    iter_opportunities,
    ranking_key,
)

Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class RankSettings:
    """What the ranker is asked (the strategy's parameters)."""

    notional_usd: Decimal
    horizon_hours: Decimal
    max_quote_age_ms: int
    estimated_slippage_bps: Decimal = DEFAULT_ESTIMATED_SLIPPAGE_BPS
    execution: ExecutionMode = ExecutionMode.TAKER
    pair_kinds: frozenset[PairKind] = frozenset({PairKind.PERP_PERP})
    # Only opportunities with at least this expected net are ranked (None: all). The strategy asks
    # for its entry minimum: nothing below it can be entered, and without a floor a market where
    # nothing pays (the usual case with hundreds of symbols) makes the search cost every pair.
    min_expected_net_usd: Decimal | None = None


def full_rank(snapshot: MarketSnapshot, settings: RankSettings, limit: int | None) -> list[Opportunity]:
    """One ranking of the whole snapshot (the scanner's bound-pruned search)."""
    return list(_iter_rank(snapshot, settings, limit))


def lazy_full_rank(snapshot: MarketSnapshot, settings: RankSettings, limit: int | None) -> LazyRanking:
    """``full_rank``, each entry searched for when first read (``bot.lazy_ranking``)."""
    return LazyRanking(_iter_rank(snapshot, settings, limit))


def _iter_rank(snapshot: MarketSnapshot, settings: RankSettings, limit: int | None) -> Iterator[Opportunity]:
    return iter_opportunities(snapshot, notional_usd=settings.notional_usd, horizon_hours=settings.horizon_hours,
                              max_quote_age_ms=settings.max_quote_age_ms, limit=limit,
                              estimated_slippage_bps=settings.estimated_slippage_bps, execution=settings.execution,
                              pair_kinds=settings.pair_kinds, min_expected_net_usd=settings.min_expected_net_usd)


class IncrementalRanker:
    """A persistent best-first search over every pair (see the module docstring)."""

    def __init__(self, settings: RankSettings, per_symbol: int = 5) -> None:
        if per_symbol < 1:
            raise ValueError("per_symbol must be at least 1")
        self.settings = settings
        self.per_symbol = per_symbol
        self._symbols: dict[str, _Symbol] = {}
        # Bounds not resolved yet: [-bound, seq, kind, symbol state, live]; an entry replaced by a
        # newer one is marked void (live False) and dropped when it surfaces or at a sweep.
        self._heap: list[list] = []
        self._heap_mark = 0  # heap size after the last sweep of void entries
        self._exact: list[tuple] = []  # (ranking_key, Opportunity), sorted: every evaluated valid pair
        self._expiry: list[tuple] = []  # (expires_ts_ms, seq, symbol state)
        # Legs looked at with a book read: key -> leg record (its ``book`` is the object it saw).
        # ``top`` re-reads these keys' books: a live feed replaces a book without a new quote.
        self._watched: dict[Key, _LegRecord] = {}
        self._books_checked: object = None  # the snapshot book mapping last checked against them
        self._seq = itertools.count()
        self._params: _Params | None = None
        self._fee_terms: dict | None = None
        self._fees: object = None  # the fee mapping the fee terms were computed from
        self._estimated: bool | None = None
        self._now = -1
        self._scale = settings.horizon_hours * settings.notional_usd
        self._slack = (self._scale + settings.notional_usd) * _BOUND_SLACK
        self.reranked = 0  # symbols whose changed legs were looked at (for tests and benchmarks)
        self.evaluated = 0  # pairs evaluated exactly (memoised costs included)
        self.books_rechanged = 0  # legs re-filed because their book changed without a new quote

    # ------------------------------------------------------------------ public
    def rebuild(self, snapshot: MarketSnapshot) -> None:
        """Drop everything and file every symbol of ``snapshot`` under its quote-only bound
        (start-up, or after the cache was dropped). No book is read until ``top``."""
        self._symbols.clear()
        self._heap.clear()
        self._heap_mark = 0
        self._exact.clear()
        self._expiry.clear()
        self._watched.clear()
        self._books_checked = None
        self._params = self._fee_terms = self._fees = self._estimated = None
        self._now = -1
        self._sync(snapshot)
        venues_of: dict[str, list[str]] = {}
        for venue, symbol in snapshot.quotes:
            venues_of.setdefault(symbol, []).append(venue)
        for symbol, venues in venues_of.items():
            self._update(snapshot, symbol, venues)

    def apply(self, snapshot: MarketSnapshot, changed: Iterable[Key]) -> set[str]:
        """``changed`` keys now hold new (or no) quotes, books or instruments in ``snapshot``.
        Their legs' pairs are dropped and the symbols filed under a bound of the pairs with a
        changed leg (no book read, nothing evaluated). Returns the symbols touched."""
        if not self._sync(snapshot):
            by_symbol: dict[str, list[str]] = {}
            for venue, symbol in changed:
                by_symbol.setdefault(symbol, []).append(venue)
            for symbol, venues in by_symbol.items():
                self._update(snapshot, symbol, venues)
            return set(by_symbol)
        return {symbol for _, symbol in changed}

    def top(self, snapshot: MarketSnapshot, n: int) -> list[Opportunity]:
        """The first ``n`` opportunities, as a full ranking of ``snapshot`` would give them."""
        if n > self.per_symbol:
            raise ValueError(f"top({n}) needs per_symbol >= {n} (it is {self.per_symbol})")
        self._sync(snapshot)
        self._expire(snapshot)
        self._recheck_books(snapshot)
        self._resolve(snapshot, n)
        return [entry[1] for entry in self._exact[:n]]

    def cross_check(self, snapshot: MarketSnapshot, n: int) -> list[tuple[Opportunity | None, Opportunity | None]]:
        """Differences between ``top(n)`` and a full ranking ([] when equal)."""
        mine, full = self.top(snapshot, n), full_rank(snapshot, self.settings, n)
        if mine == full:
            return []
        width = max(len(mine), len(full))
        mine = mine + [None] * (width - len(mine))
        full = full + [None] * (width - len(full))
        return [(a, b) for a, b in zip(mine, full) if a != b]

    def unnoticed_changes(self, snapshot: MarketSnapshot, symbol: str) -> list[str]:
        """Why the ranker's view of ``symbol`` may differ from ``snapshot``: each input it holds (a
        leg's quote, the book it looked at, a pair's instrument) that is no longer the snapshot's
        object, i.e. a change ``apply`` was never told about (for the cross-check's log line)."""
        state = self._symbols.get(symbol)
        quotes = snapshot.quotes
        if state is None:
            venues = sorted(v for v, s in quotes if s == symbol)
            return [f"{symbol} not held by the ranker (quoted on {', '.join(venues) or 'no venue'})"]
        out: list[str] = []
        for venue in sorted(set(state.venues) | {v for v, s in quotes if s == symbol}):
            key = (venue, symbol)
            quote, rec = quotes.get(key), state.legs.get(venue)
            if venue not in state.venues:
                out.append(f"{venue} quote appeared unnoticed")
                continue
            if rec is None:
                continue  # no leg (an unusable quote)
            if rec.quote is not quote:
                out.append(f"{venue} quote changed unnoticed")
            if self._watched.get(key) is rec:
                book = snapshot.books.get(key)
                if book is not rec.book:
                    out.append(f"{venue} book changed unnoticed (looked at {_book_text(rec.book)}, "
                               f"now {_book_text(book)})")
        instruments = snapshot.instruments
        for long_venue, short_venue in state.exact:
            memo = state.memo.get((long_venue, short_venue))
            if memo is not None and (memo[2] is not instruments.get((long_venue, symbol))
                                     or memo[3] is not instruments.get((short_venue, symbol))):
                out.append(f"{long_venue}/{short_venue} instrument changed unnoticed")
        return out

    def describe(self, snapshot: MarketSnapshot,
                 differences: list[tuple[Opportunity | None, Opportunity | None]]) -> str:
        """One line per differing place of ``cross_check``: what each ranking had there and the
        unnoticed changes of the symbols involved (the cross-check's log detail)."""
        def one(opp: Opportunity | None) -> str:
            if opp is None:
                return "nothing"
            return f"{opp.symbol} long {opp.long_venue} short {opp.short_venue} net {opp.expected_net:.6f}"

        lines, symbols = [], []
        for mine, full in differences:
            lines.append(f"incremental {one(mine)} / full {one(full)}")
            for opp in (mine, full):
                if opp is not None and opp.symbol not in symbols:
                    symbols.append(opp.symbol)
        for symbol in symbols:
            why = self.unnoticed_changes(snapshot, symbol)
            lines.append(f"{symbol}: {'; '.join(why) if why else 'no unnoticed input change'}")
        return " | ".join(lines)

    @property
    def pending_symbols(self) -> frozenset[str]:
        """Symbols with changed legs not looked at yet (filed under their bound only)."""
        return frozenset(name for name, state in self._symbols.items() if state.pending is not None)

    @property
    def symbols(self) -> int:
        return len(self._symbols)

    # ------------------------------------------------------------------ internals
    def _sync(self, snapshot: MarketSnapshot) -> bool:
        """Parameters for the snapshot's time. A change of the fee schedules, of the costing mode
        (books or none) or a clock going back invalidates everything: rebuilt (True)."""
        now = snapshot.now_ts_ms
        fees = snapshot.fees
        if self._params is not None and now == self._now and fees is self._fees:
            return False
        estimated = not snapshot.books
        s = self.settings
        rebuild = self._params is not None and (now < self._now or estimated != self._estimated
                                                or (fees is not self._fees and fees != self._fees))
        params = _params(snapshot, s.notional_usd, s.horizon_hours, s.max_quote_age_ms, Liquidity.TAKER,
                         s.estimated_slippage_bps, DEFAULT_MAX_PRICE_DIVERGENCE, s.execution, s.pair_kinds)
        if rebuild:
            self.rebuild(snapshot)
            return True
        self._params, self._now, self._fees, self._estimated = params, now, fees, estimated
        self._fee_terms = _fee_terms(snapshot, params)
        return False

    def _update(self, snapshot: MarketSnapshot, symbol: str, venues: Iterable[str]) -> None:
        """New quotes (or none) on ``venues`` of ``symbol``: replace their legs, drop their pairs,
        file the symbol under the bound of the pairs with a leg not looked at."""
        state = self._symbols.get(symbol)
        if state is None:
            state = self._symbols[symbol] = _Symbol(symbol)
        params, fee_terms = self._params, self._fee_terms
        min_ts, kinds = params.min_ts_ms, params.pair_kinds
        spot_ok = PairKind.SPOT_PERP in kinds
        get_quote = snapshot.quotes.get
        for venue in venues:
            if venue in state.legs:
                self._drop_leg(state, venue)
            quote = get_quote((venue, symbol))
            if quote is None:
                state.venues.discard(venue)
                continue
            state.venues.add(venue)
            hourly = quote.rank_hourly_rate_or_none
            term = fee_terms.get(venue)
            if (hourly is None or term is None or quote.ts_ms < min_ts or quote.venue != venue
                    or quote.symbol != symbol or (not spot_ok and is_spot(venue))):
                continue  # no leg (stale quotes never turn fresh again)
            c = term[0]
            state.legs[venue] = _LegRecord(venue, quote, hourly - c, hourly + c)
            state.unlooked.add(venue)
        if not state.venues:
            self._forget(state)
            return
        self._file_pending(state)

    def _drop_leg(self, state: _Symbol, venue: str) -> None:
        rec = state.legs.pop(venue)
        key = (venue, state.name)
        if self._watched.get(key) is rec:
            del self._watched[key]
        state.unlooked.discard(venue)
        exact = state.exact
        for pair in [pair for pair in exact if venue in pair]:
            self._remove_exact(exact.pop(pair))

    def _remove_exact(self, entry: tuple) -> None:
        merged = self._exact
        i = bisect.bisect_left(merged, entry)
        if merged[i] is not entry:  # keys are unique (symbol, long, short): never reached
            i = merged.index(entry)
        del merged[i]

    def _forget(self, state: _Symbol) -> None:
        for venue, rec in state.legs.items():
            if self._watched.get((venue, state.name)) is rec:
                del self._watched[(venue, state.name)]
        for entry in state.exact.values():
            self._remove_exact(entry)
        state.exact.clear()
        for entry in (state.pending, state.pairs_entry):
            if entry is not None:
                entry[4] = False
        state.pending = state.pairs_entry = None
        del self._symbols[state.name]

    def _file_pending(self, state: _Symbol) -> None:
        """File the symbol under an upper bound of every pair with a leg not looked at yet:
        ``max(s_u - l_all, s_all - l_u)`` (``s`` = h - c, ``l`` = h + c; the raw quote-only term for
        a leg not looked at, the looked-at one otherwise), or nothing when no such pair can exist
        or reach the floor. A live entry with a bound at least the new one is kept (still a bound;
        ``_resolve`` files it under the exact one when it surfaces): fewer void entries."""
        pick = self._pending_score(state) if state.unlooked else None
        if pick is None:
            self._drop_pending(state)
            return
        score = pick[0]
        bound = self._usd_bound(score)
        floor = self.settings.min_expected_net_usd
        if floor is not None and bound < floor:
            self._drop_pending(state)
            return
        state.pending_bound = bound
        if state.pending is not None and -state.pending[0] >= bound:
            return
        self._drop_pending(state)
        state.pending = entry = [-bound, next(self._seq), _PENDING, state, True]
        self._push(entry)

    @staticmethod
    def _drop_pending(state: _Symbol) -> None:
        if state.pending is not None:
            state.pending[4] = False
            state.pending = None

    def _usd_bound(self, score: Decimal) -> Decimal:
        # The scanner's ``usd_bound``: a non-positive score bounds the net by the slack.
        return score * self._scale + self._slack if score > ZERO else self._slack

    def _push(self, entry: list) -> None:
        heap = self._heap
        heapq.heappush(heap, entry)
        if len(heap) > 2 * self._heap_mark + 256:  # sweep the void entries
            heap[:] = [e for e in heap if e[4]]
            heapq.heapify(heap)
            self._heap_mark = len(heap)

    @staticmethod
    def _live(entry: list) -> bool:
        return entry[4]

    def _push_pairs_head(self, state: _Symbol) -> None:
        """File the symbol's best pair not evaluated yet (skipping pairs of changed legs) in the heap."""
        pairs, pos, legs = state.pairs, state.pos, state.legs
        while pos < len(pairs):
            _, _, long_rec, short_rec = pairs[pos]
            if legs.get(long_rec.venue) is long_rec and legs.get(short_rec.venue) is short_rec:
                break
            pos += 1
        state.pos = pos
        if state.pairs_entry is not None:
            state.pairs_entry[4] = False
            state.pairs_entry = None
        if pos < len(pairs):
            state.pairs_entry = entry = [pairs[pos][0], next(self._seq), _PAIRS, state, True]
            self._push(entry)

    def _recheck_books(self, snapshot: MarketSnapshot) -> None:
        """Re-file the legs whose book in ``snapshot`` is no longer the one they were looked at
        with (a new book, none, or one the feed now refuses as stale or absurd). A live feed
        replaces books many times between two funding quotes, so a book change does not come with
        a new quote object and ``apply`` is not told about it; only the legs looked at depend on a
        book (the others are filed under quote-only bounds), so only those are read again. The
        same mapping object as at the last check holds the same books (a snapshot is immutable)."""
        books = snapshot.books
        if books is self._books_checked:
            return
        self._books_checked = books
        if not self._watched:
            return
        get = books.get
        by_symbol: dict[str, list[str]] = {}
        for (venue, symbol), rec in self._watched.items():
            if get((venue, symbol)) is not rec.book:
                by_symbol.setdefault(symbol, []).append(venue)
        for symbol, venues in by_symbol.items():
            self.books_rechanged += len(venues)
            self._update(snapshot, symbol, venues)

    def _expire(self, snapshot: MarketSnapshot) -> None:
        """Symbols whose looked-at inputs turned stale: every leg is read again from the snapshot."""
        expiry, now = self._expiry, snapshot.now_ts_ms
        while expiry and expiry[0][0] < now:
            ts, _, state = heapq.heappop(expiry)
            if self._symbols.get(state.name) is state and state.expires_ts_ms == ts:
                state.expires_ts_ms = None
                self._update(snapshot, state.name, list(state.venues))

    def _resolve(self, snapshot: MarketSnapshot, n: int) -> None:
        """Pop bounds while one reaches the ``n``-th exact net (ties included) or there are fewer
        than ``n`` exact results: look at a symbol's changed legs, or evaluate a pair exactly."""
        heap, merged = self._heap, self._exact
        floor = self.settings.min_expected_net_usd
        while heap:
            entry = heap[0]
            if not entry[4]:
                heapq.heappop(heap)
                continue
            bound = -entry[0]
            if floor is not None and bound < floor:
                return  # every remaining bound is at most this one
            if len(merged) >= n and bound < merged[n - 1][1].expected_net:
                return
            heapq.heappop(heap)
            state = entry[3]
            if entry[2] == _PENDING:
                if bound > state.pending_bound:  # a looser bound kept by _file_pending: file the exact one
                    state.pending = entry = [-state.pending_bound, next(self._seq), _PENDING, state, True]
                    self._push(entry)
                else:
                    self._look(snapshot, state, n)
                continue
            _, _, long_rec, short_rec = state.pairs[state.pos]
            legs = state.legs
            if legs.get(long_rec.venue) is not long_rec or legs.get(short_rec.venue) is not short_rec:
                self._push_pairs_head(state)  # a changed leg's pair: file the next one instead
                continue
            state.pos += 1
            self._push_pairs_head(state)
            self._evaluate_pair(snapshot, state, long_rec, short_rec)

    def _look(self, snapshot: MarketSnapshot, state: _Symbol, n: int) -> None:
        """Look closely at the symbol's changed legs (book, spread), most promising first, and file
        each new pair under its own bound; stop when the pairs left with a leg not looked at cannot
        reach the ``n``-th exact net (or the floor): those legs stay filed under their bound."""
        self.reranked += 1
        self._drop_pending(state)
        merged, floor = self._exact, self.settings.min_expected_net_usd
        bar = merged[n - 1][1].expected_net if len(merged) >= n else None
        if floor is not None and (bar is None or floor > bar):
            bar = floor
        params, fee_terms = self._params, self._fee_terms
        min_ts, kinds = params.min_ts_ms, params.pair_kinds
        symbol, legs, unlooked = state.name, state.legs, state.unlooked
        looked = [rec for venue, rec in legs.items() if venue not in unlooked and rec.looked is not None]
        pairs = [p for p in itertools.islice(state.pairs, state.pos, None)
                 if legs.get(p[2].venue) is p[2] and legs.get(p[3].venue) is p[3]]
        seq, scale, slack = self._seq, self._scale, self._slack
        check_kind = PairKind.SPOT_PERP in kinds  # else every leg is a perp: every pair is perp-perp
        append = pairs.append
        expires, max_age = state.expires_ts_ms, self.settings.max_quote_age_ms
        new_pairs = False
        while unlooked:
            pick = self._pending_score(state)
            if pick is None:
                break  # fewer than two usable legs: no pair
            score, venue = pick
            if bar is not None and self._usd_bound(score) < bar:
                break
            unlooked.discard(venue)
            rec = legs[venue]
            a = None
            if rec.quote.ts_ms >= min_ts:
                a = _close_look(snapshot, symbol, rec.quote, fee_terms, params)
                if not params.estimated:  # the book the look saw (the snapshot's: read once per snapshot)
                    rec.book = snapshot.books.get((venue, symbol))
                    self._watched[(venue, symbol)] = rec
            rec.looked = a
            if a is None:
                continue
            oldest = rec.quote.ts_ms
            book = a[_BOOK]
            if book is not None and book.ts_ms < oldest:
                oldest = book.ts_ms
            if expires is None or oldest + max_age < expires:
                expires = oldest + max_age
            a_hourly = a[_HOURLY]
            for other in looked:
                b = other.looked
                b_hourly = b[_HOURLY]
                # The profitable direction (the scanner's ``_is_long_side``): long the lower rate,
                # on equal rates the venue named first.
                if a_hourly < b_hourly or (a_hourly == b_hourly and venue < other.venue):
                    long_rec, short_rec, pair_score = rec, other, b[_SHORT_SCORE] - a[_LONG_COST]
                else:
                    long_rec, short_rec, pair_score = other, rec, a[_SHORT_SCORE] - b[_LONG_COST]
                if check_kind and pair_kind(long_rec.venue, short_rec.venue) not in kinds:
                    continue
                # the scanner's ``usd_bound``
                bound = pair_score * scale + slack if pair_score > ZERO else slack
                if floor is not None and bound < floor:
                    continue
                append((-bound, next(seq), long_rec, short_rec))
                new_pairs = True
            looked.append(rec)
        if expires is not None and expires != state.expires_ts_ms:
            state.expires_ts_ms = expires
            heapq.heappush(self._expiry, (expires, next(seq), state))
        if new_pairs:
            pairs.sort()
            state.pairs, state.pos = pairs, 0
            self._push_pairs_head(state)
        self._file_pending(state)

    @staticmethod
    def _pending_score(state: _Symbol) -> tuple[Decimal, str] | None:
        """``max(s_u - l_all, s_all - l_u)`` over the symbol's usable legs (``s`` = h - c, ``l`` =
        h + c: the raw quote-only terms for a leg not looked at, the looked-at ones otherwise), an
        upper bound of the score of every pair with a leg not looked at, and the leg not looked at
        that attains it (the one to look at first); None with fewer than two usable legs."""
        unlooked = state.unlooked
        short_u = long_u = short_all = long_all = None
        best_short = best_long = ""
        usable = 0
        for venue, rec in state.legs.items():
            if venue in unlooked:
                s_score, l_cost = rec.short_raw, rec.long_raw
                if short_u is None or s_score > short_u:
                    short_u, best_short = s_score, venue
                if long_u is None or l_cost < long_u:
                    long_u, best_long = l_cost, venue
            else:
                leg = rec.looked
                if leg is None:
                    continue
                s_score, l_cost = leg[_SHORT_SCORE], leg[_LONG_COST]
            usable += 1
            if short_all is None or s_score > short_all:
                short_all = s_score
            if long_all is None or l_cost < long_all:
                long_all = l_cost
        if usable < 2 or short_u is None:
            return None
        as_short, as_long = short_u - long_all, short_all - long_u
        return (as_short, best_short) if as_short >= as_long else (as_long, best_long)

    def _evaluate_pair(self, snapshot: MarketSnapshot, state: _Symbol, long_rec: _LegRecord,
                       short_rec: _LegRecord) -> None:
        """The pair's exact opportunity (the scanner's own evaluation), filed in the exact list.
        With books, the sizing and book walk are kept per pair and reused while the two books and
        instruments are the same objects (a funding-rate change re-evaluates only the funding)."""
        self.evaluated += 1
        params, symbol = self._params, state.name
        long_leg, short_leg = long_rec.looked, short_rec.looked
        long_book, short_book = long_leg[_BOOK], short_leg[_BOOK]
        pair = (long_rec.venue, short_rec.venue)
        if long_book is not None and short_book is not None:
            instruments = snapshot.instruments
            long_inst, short_inst = instruments.get((pair[0], symbol)), instruments.get((pair[1], symbol))
            memo = state.memo.get(pair)
            if (memo is not None and memo[0] is long_book and memo[1] is short_book and memo[2] is long_inst
                    and memo[3] is short_inst):
                sized, costs = memo[4], memo[5]
            else:
                sized = costs = None
                if long_inst is not None and short_inst is not None:
                    sized = _size_pair(long_leg, short_leg, long_inst, short_inst, params)
                    if sized is not None:
                        costs = _pair_book_costs(long_leg, short_leg, sized[1], params)
                state.memo[pair] = (long_book, short_book, long_inst, short_inst, sized, costs)
            opp = None if costs is None else _opportunity(symbol, long_leg, short_leg, sized, costs, params)
        else:
            sized = _sized(snapshot, symbol, long_leg, short_leg, params)
            opp = None if sized is None else _evaluate(symbol, long_leg, short_leg, sized, params)
        if opp is None:
            return
        floor = self.settings.min_expected_net_usd
        if floor is not None and opp.expected_net < floor:
            return
        entry = (ranking_key(opp), opp)
        bisect.insort(self._exact, entry)
        state.exact[pair] = entry


def _book_text(book) -> str:
    return "no book (none, stale or refused)" if book is None else f"the book of ts {book.ts_ms}"


_PENDING, _PAIRS = 0, 1  # heap entry kinds: a symbol's changed legs, its next pair


class _LegRecord:
    """One (venue, symbol) quote as a leg; a new record per change (pair entries hold the records
    they were computed from, so a changed leg voids them by identity)."""

    __slots__ = ("venue", "quote", "short_raw", "long_raw", "looked", "book")

    def __init__(self, venue: str, quote, short_raw: Decimal, long_raw: Decimal) -> None:
        self.venue = venue
        self.quote = quote
        self.short_raw = short_raw  # h - c with the quote-only fee term (no book read)
        self.long_raw = long_raw  # h + c
        self.looked = _UNSEEN  # the scanner's close look once done (None: not a usable leg)
        self.book = None  # the snapshot's book when looked at (None: none, or not read)


class _Symbol:
    """The ranker's state of one symbol."""

    __slots__ = ("name", "venues", "legs", "unlooked", "exact", "memo", "pending", "pending_bound", "expires_ts_ms",
                 "pairs", "pos", "pairs_entry")

    def __init__(self, name: str) -> None:
        self.name = name
        self.venues: set[str] = set()  # venues quoting it (usable or not)
        self.legs: dict[str, _LegRecord] = {}  # venue -> usable leg
        self.unlooked: set[str] = set()  # legs changed and not looked at yet
        self.exact: dict[tuple[str, str], tuple] = {}  # (long, short) -> its entry in the exact list
        self.memo: dict[tuple[str, str], tuple] = {}  # (long, short) -> (books, instruments, sizing, costs)
        self.pending: list | None = None  # its live heap entry for the legs not looked at
        self.pending_bound: Decimal = ZERO  # that entry's exact bound (the entry's may be looser)
        self.expires_ts_ms: int | None = None  # when the first looked-at input turns stale
        # Its pairs not evaluated yet, best bound first: (-bound, seq, long leg, short leg); the
        # heap holds the one at ``pos`` (entry ``pairs_entry``), the next enters when it pops.
        self.pairs: list[tuple] = []
        self.pos = 0
        self.pairs_entry: list | None = None


def changed_keys(previous: dict[Key, object] | None, current: dict[Key, object]) -> set[Key] | None:
    """Keys whose quote object changed between two snapshots' quote maps (None: no previous)."""
    if previous is None:
        return None
    changed = {key for key, quote in current.items() if previous.get(key) is not quote}
    changed.update(key for key in previous if key not in current)
    return changed


class RankingSource:
    """The strategy's ranked candidates per pass: incremental when few symbols changed, else full.

    Each pass compares the snapshot's quotes with the previous pass's (object identity; a book
    that changed without a new quote, as a live feed's do, is noticed by the ranker itself: see
    ``IncrementalRanker._recheck_books``). When at most ``incremental_fraction`` of the symbols
    changed and the per-symbol cache is built, only those symbols are re-ranked; otherwise one full bound-pruned ranking runs
    (the simulated market moves every key every step, so it always takes that path; a live feed
    moving a few keys between passes takes the incremental one). The cache is built on the first
    quiet pass (a full ranking of every symbol: the start-up cost) and dropped after a busy one.
    Every ``cross_check_every`` incremental passes the result is compared with a full ranking; a
    difference is logged (each differing place, both rankings' entries, and the inputs the ranker
    holds that are no longer the snapshot's: ``IncrementalRanker.describe``), counted and repaired
    by a rebuild.
    """

    def __init__(self, settings: RankSettings, n: int = 5, *, incremental_fraction: float = 0.05,
                 cross_check_every: int = 60) -> None:
        self.settings = settings
        self.n = n
        self.incremental_fraction = incremental_fraction
        self.cross_check_every = cross_check_every
        self._ranker: IncrementalRanker | None = None
        self._previous: dict[Key, object] | None = None
        self.full_passes = 0
        self.incremental_passes = 0
        self.cross_checks = 0
        self.cross_check_failures = 0

    def ranked(self, snapshot: MarketSnapshot) -> list[Opportunity]:
        """The first ``n`` opportunities of ``snapshot`` (equal to ``full_rank(snapshot, settings, n)``)."""
        quotes = snapshot.quotes
        changed = changed_keys(self._previous, quotes)  # type: ignore[arg-type]
        self._previous = quotes  # type: ignore[assignment]
        symbols = {symbol for _, symbol in changed} if changed is not None else None
        total = max(1, len({symbol for _, symbol in quotes}) if symbols is not None else 1)
        quiet = symbols is not None and len(symbols) <= self.incremental_fraction * total
        if not quiet:
            self._ranker = None
            self.full_passes += 1
            # Lazy: a pass that enters (or refuses) the best pair never evaluates the others.
            return lazy_full_rank(snapshot, self.settings, self.n)
        if self._ranker is None:
            self._ranker = IncrementalRanker(self.settings, per_symbol=self.n)
            self._ranker.rebuild(snapshot)
        else:
            self._ranker.apply(snapshot, changed)  # type: ignore[arg-type]
        self.incremental_passes += 1
        if self.incremental_passes % self.cross_check_every == 0:
            self.cross_checks += 1
            differences = self._ranker.cross_check(snapshot, self.n)
            if differences:
                from loguru import logger

                self.cross_check_failures += 1
                logger.bind(kind="ranking_cross_check").error(
                    "incremental ranking differs from a full ranking at {} place(s); rebuilt: {}",
                    len(differences), self._ranker.describe(snapshot, differences))
                self._ranker.rebuild(snapshot)
        return self._ranker.top(snapshot, self.n)
