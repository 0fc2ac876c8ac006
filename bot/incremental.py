"""Incremental ranking: a market change re-ranks only its own symbol (a layer over ``bot.scanner``).

The scanner ranks a whole snapshot. With thousands of (venue, symbol) keys and a feed that moves
a few of them at a time, re-ranking everything per change is wasted work. ``IncrementalRanker``
keeps, per symbol, the scanner's own best pair for that symbol alone (``rank_opportunities`` on a
one-symbol view of the snapshot, limit 1, so the scoring stays the scanner's, whatever it is) in
one sorted list of symbols. A change to a (venue, symbol) key does not rank anything: the symbol
leaves the list and is filed as pending under the scanner's cheap first bound of its best net
(``symbol_bound_usd``: rates and fees only, no book). ``top(n)`` first ranks the pending symbols
whose bound reaches the ``n``-th listed net (best bound first; a symbol below it cannot enter the
first ``n``, so most changes never cost a ranking), then takes the ``n`` best symbols of the list,
ranks each of them ``n`` deep (cached until the symbol changes) and returns the first ``n`` of
their pairs (kept until one of the head symbols changes).

Why that is exact: if a symbol's pair is k-th (k <= n) in one full ranking, at most k - 1 pairs,
so at most k - 1 other symbols' best pairs, rank above it; its symbol is among the ``n`` best
symbols, and the pair among its symbol's ``n`` best. So the first ``n`` of those few symbols'
``n``-deep lists equal the first ``n`` of a full ranking (ties included: ``ranking_key`` is one
total order). A symbol's result
depends on time only through quote and book freshness: each is kept until its oldest input would
turn stale (``expires_ts_ms``) and re-ranked then. ``cross_check`` compares with a full ranking
(start-up and periodically; tests hold them equal).
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from bot.core.domain import ExecutionMode, MarketSnapshot, Opportunity, PairKind
from bot.scanner import DEFAULT_ESTIMATED_SLIPPAGE_BPS, rank_opportunities, ranking_key, symbol_bound_usd

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
    return rank_opportunities(snapshot, notional_usd=settings.notional_usd, horizon_hours=settings.horizon_hours,
                              max_quote_age_ms=settings.max_quote_age_ms, limit=limit,
                              estimated_slippage_bps=settings.estimated_slippage_bps, execution=settings.execution,
                              pair_kinds=settings.pair_kinds, min_expected_net_usd=settings.min_expected_net_usd)


class IncrementalRanker:
    """Per-symbol cache of the scanner's results with a merged top list (see the module docstring)."""

    def __init__(self, settings: RankSettings, per_symbol: int = 5) -> None:
        if per_symbol < 1:
            raise ValueError("per_symbol must be at least 1")
        self.settings = settings
        self.per_symbol = per_symbol
        self._venues_of: dict[str, set[str]] = {}  # symbol -> venues quoted
        self._pairs_of: dict[str, list[tuple]] = {}  # symbol -> its entries in _merged
        self._merged: list[tuple] = []  # (ranking_key, Opportunity), sorted
        self._expiry: list[tuple[int, int, str]] = []  # heap of (expires_ts_ms, version, symbol)
        self._version: dict[str, int] = {}
        self._deep: dict[str, list[Opportunity]] = {}  # symbol -> its per_symbol best pairs (lazy)
        self._dirty: dict[str, tuple[int, Decimal]] = {}  # symbol -> (version, bound): changed, not re-ranked yet
        self._dirty_heap: list[tuple[Decimal, int, str]] = []  # (-bound, version, symbol)
        self._top: dict[int, list[Opportunity]] = {}  # n -> last top(n), until a head symbol changes
        self.reranked = 0  # symbols re-ranked so far (for benchmarks)

    # ------------------------------------------------------------------ building
    def rebuild(self, snapshot: MarketSnapshot) -> None:
        """Rank every symbol of ``snapshot`` (start-up, or after the cache was dropped)."""
        self._venues_of.clear()
        self._pairs_of.clear()
        self._merged.clear()
        self._expiry.clear()
        self._version.clear()
        self._deep.clear()
        self._top.clear()
        self._dirty.clear()
        self._dirty_heap.clear()
        for venue, symbol in snapshot.quotes:
            self._venues_of.setdefault(symbol, set()).add(venue)
        for symbol in list(self._venues_of):
            self._mark_dirty(snapshot, symbol)

    def apply(self, snapshot: MarketSnapshot, changed: Iterable[Key]) -> set[str]:
        """``changed`` keys now hold new (or no) quotes/books in ``snapshot``: re-rank their symbols
        only. Returns the symbols re-ranked."""
        symbols = set()
        for venue, symbol in changed:
            venues = self._venues_of.setdefault(symbol, set())
            if (venue, symbol) in snapshot.quotes:
                venues.add(venue)
            else:
                venues.discard(venue)
            symbols.add(symbol)
        for symbol in symbols:
            self._mark_dirty(snapshot, symbol)
        return symbols

    def top(self, snapshot: MarketSnapshot, n: int) -> list[Opportunity]:
        """The first ``n`` opportunities, as a full ranking of ``snapshot`` would give them.
        Symbols whose inputs turned stale since they were ranked are re-ranked first."""
        if n > self.per_symbol:
            raise ValueError(f"top({n}) needs per_symbol >= {n} (it is {self.per_symbol})")
        now = snapshot.now_ts_ms
        expiry, version = self._expiry, self._version
        while expiry and expiry[0][0] < now:
            _, ver, symbol = heapq.heappop(expiry)
            if version.get(symbol) == ver:
                self._rerank(snapshot, symbol)
        self._resolve_dirty(snapshot, n)
        cached = self._top.get(n)
        if cached is not None:
            return list(cached)
        candidates: list[Opportunity] = []
        for _, best in self._merged[:n]:
            candidates.extend(self._deep_list(snapshot, best.symbol, n))
        candidates.sort(key=ranking_key)
        self._top[n] = candidates = candidates[:n]
        return list(candidates)

    def cross_check(self, snapshot: MarketSnapshot, n: int) -> list[tuple[Opportunity | None, Opportunity | None]]:
        """Differences between ``top(n)`` and a full ranking ([] when equal)."""
        mine, full = self.top(snapshot, n), full_rank(snapshot, self.settings, n)
        if mine == full:
            return []
        width = max(len(mine), len(full))
        mine = mine + [None] * (width - len(mine))
        full = full + [None] * (width - len(full))
        return [(a, b) for a, b in zip(mine, full) if a != b]

    @property
    def pending_symbols(self) -> frozenset[str]:
        """Symbols changed since they were last ranked (filed under their bound only)."""
        return frozenset(self._dirty)

    @property
    def symbols(self) -> int:
        return len(self._venues_of)

    # ------------------------------------------------------------------ internals
    def _view(self, snapshot: MarketSnapshot, symbol: str) -> tuple[MarketSnapshot, int | None]:
        """The one-symbol snapshot the scanner ranks, and the oldest fresh quote time in it."""
        view_quotes = {}
        oldest: int | None = None
        min_age_ts = snapshot.now_ts_ms - self.settings.max_quote_age_ms
        get = snapshot.quotes.get
        for venue in self._venues_of.get(symbol, ()):
            quote = get((venue, symbol))
            if quote is None:
                continue
            view_quotes[(venue, symbol)] = quote
            if quote.ts_ms >= min_age_ts and (oldest is None or quote.ts_ms < oldest):
                oldest = quote.ts_ms
        view = MarketSnapshot(now_ts_ms=snapshot.now_ts_ms, quotes=view_quotes, books=snapshot.books,
                              instruments=snapshot.instruments, fees=snapshot.fees)
        return view, oldest

    def _oldest_book(self, snapshot: MarketSnapshot, symbol: str, ranked: list[Opportunity],
                     oldest: int | None) -> int | None:
        min_age_ts = snapshot.now_ts_ms - self.settings.max_quote_age_ms
        for opp in ranked:
            for venue in (opp.long_venue, opp.short_venue):
                book = _peek(snapshot.books, (venue, symbol))
                if book is not None and book.ts_ms >= min_age_ts and (oldest is None or book.ts_ms < oldest):
                    oldest = book.ts_ms
        return oldest

    def _deep_list(self, snapshot: MarketSnapshot, symbol: str, n: int) -> list[Opportunity]:
        """The symbol's ``n`` best pairs (ranked on first need after each change of the symbol)."""
        deep = self._deep.get(symbol)
        if deep is None:
            view, oldest = self._view(snapshot, symbol)
            deep = self._deep[symbol] = full_rank(view, self.settings, self.per_symbol)
            oldest = self._oldest_book(snapshot, symbol, deep, oldest)
            if oldest is not None:
                heapq.heappush(self._expiry, (oldest + self.settings.max_quote_age_ms, self._version[symbol], symbol))
        return deep[:n]

    def _mark_dirty(self, snapshot: MarketSnapshot, symbol: str) -> None:
        """The symbol changed: drop its ranked pair and file it under an upper bound of its best net
        (no book read). ``top`` re-ranks it only if that bound could reach the top."""
        self._deep.pop(symbol, None)
        self._remove_entries(symbol)
        venues = self._venues_of.get(symbol)
        if not venues:
            self._venues_of.pop(symbol, None)
            self._version.pop(symbol, None)
            self._dirty.pop(symbol, None)
            return
        ver = self._version.get(symbol, 0) + 1
        self._version[symbol] = ver  # its pending expiry entries are void now
        get = snapshot.quotes.get
        quotes = [q for venue in venues if (q := get((venue, symbol))) is not None]
        s = self.settings
        bound = symbol_bound_usd(snapshot, quotes, notional_usd=s.notional_usd, horizon_hours=s.horizon_hours,
                                 max_quote_age_ms=s.max_quote_age_ms, estimated_slippage_bps=s.estimated_slippage_bps,
                                 execution=s.execution)
        floor = s.min_expected_net_usd
        if bound is None or (floor is not None and bound < floor):
            # fewer than two usable quotes, or nothing that can reach the floor: no pair now, and
            # time only makes quotes stale (the bound only falls)
            self._dirty.pop(symbol, None)
            return
        self._dirty[symbol] = (ver, bound)
        heapq.heappush(self._dirty_heap, (-bound, ver, symbol))
        if len(self._dirty_heap) > 4 * len(self._dirty) + 64:  # drop the void entries
            self._dirty_heap = [(-b, v, sym) for sym, (v, b) in self._dirty.items()]
            heapq.heapify(self._dirty_heap)

    def _resolve_dirty(self, snapshot: MarketSnapshot, n: int) -> None:
        """Re-rank the changed symbols whose bound reaches the ``n``-th ranked pair's net (ties
        included), best bound first; the others cannot enter the first ``n`` and stay pending."""
        heap, dirty, merged = self._dirty_heap, self._dirty, self._merged
        while heap:
            neg_bound, ver, symbol = heap[0]
            pending = dirty.get(symbol)
            if pending is None or pending[0] != ver:
                heapq.heappop(heap)
                continue
            if len(merged) >= n and -neg_bound < -merged[n - 1][0][0]:
                return
            heapq.heappop(heap)
            del dirty[symbol]
            self._rerank(snapshot, symbol, deep=True)

    def _remove_entries(self, symbol: str) -> None:
        merged = self._merged
        # The cached top lists hold only the head symbols' pairs: they stay valid while this symbol
        # neither was nor becomes one of the first ``per_symbol`` (>= any n asked) symbols.
        head = self.per_symbol
        for entry in self._pairs_of.pop(symbol, ()):
            i = bisect.bisect_left(merged, entry)
            if i < len(merged) and merged[i] is entry:
                del merged[i]
            else:  # equal keys can only be this very entry; fall back to a scan
                i = merged.index(entry)
                del merged[i]
            if i < head:
                self._top.clear()

    def _rerank(self, snapshot: MarketSnapshot, symbol: str, *, deep: bool = False) -> None:
        """Rank the symbol alone: its best pair is filed in the list; with ``deep`` (a symbol likely
        to reach the head) ``per_symbol`` deep at once, kept as its deep list (one ranking, not two:
        a ranking's first pair is the ranking with limit 1)."""
        self.reranked += 1
        self._deep.pop(symbol, None)
        self._dirty.pop(symbol, None)
        self._remove_entries(symbol)
        merged = self._merged
        head = self.per_symbol
        venues = self._venues_of.get(symbol)
        if not venues:
            self._venues_of.pop(symbol, None)
            self._version.pop(symbol, None)
            return
        view, oldest = self._view(snapshot, symbol)
        ranked = full_rank(view, self.settings, self.per_symbol if deep else 1)
        if deep:
            self._deep[symbol] = ranked
        entries = []
        for opp in ranked[:1]:
            entry = (ranking_key(opp), opp)
            i = bisect.bisect_right(merged, entry)
            merged.insert(i, entry)
            if i < head:
                self._top.clear()
            entries.append(entry)
        oldest = self._oldest_book(snapshot, symbol, ranked, oldest)
        if entries:
            self._pairs_of[symbol] = entries
        ver = self._version.get(symbol, 0) + 1
        self._version[symbol] = ver
        if oldest is not None:
            # Fresh while ts >= now - max_age: the result holds until now passes oldest + max_age.
            heapq.heappush(self._expiry, (oldest + self.settings.max_quote_age_ms, ver, symbol))


def _peek(books, key: Key):
    """A book the ranker has already read (never builds one)."""
    peek = getattr(books, "peek", None)
    return peek(key) if peek is not None else books.get(key)


def changed_keys(previous: dict[Key, object] | None, current: dict[Key, object]) -> set[Key] | None:
    """Keys whose quote object changed between two snapshots' quote maps (None: no previous)."""
    if previous is None:
        return None
    changed = {key for key, quote in current.items() if previous.get(key) is not quote}
    changed.update(key for key in previous if key not in current)
    return changed


class RankingSource:
    """The strategy's ranked candidates per pass: incremental when few symbols changed, else full.

    Each pass compares the snapshot's quotes with the previous pass's (object identity: a feed
    issues a new quote object whenever a key's quote or book changes; the simulated and replayed
    markets do). When at most ``incremental_fraction`` of the symbols changed and the per-symbol
    cache is built, only those symbols are re-ranked; otherwise one full bound-pruned ranking runs
    (the simulated market moves every key every step, so it always takes that path; a live feed
    moving a few keys between passes takes the incremental one). The cache is built on the first
    quiet pass (a full ranking of every symbol: the start-up cost) and dropped after a busy one.
    Every ``cross_check_every`` incremental passes the result is compared with a full ranking; a
    difference is logged, counted and repaired by a rebuild.
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
            return full_rank(snapshot, self.settings, self.n)
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
                    f"incremental ranking differs from a full ranking at {len(differences)} place(s); rebuilt")
                self._ranker.rebuild(snapshot)
        return self._ranker.top(snapshot, self.n)
