"""Opportunity scanner: rank every venue pair of every symbol by expected net USD (pure).

A pair is LONG on the venue with the lower hourly funding rate and SHORT on the other, with one
base size on both. Evaluating a pair exactly (``evaluate_pair``) walks both books for the real
size; doing that for every pair is too slow, so the ranking is a best-first search over upper
bounds in one max-heap:

1. One pass over the quotes (the hot loop): freshness and ``h -/+ c`` where ``h`` is the quote's
   rate per hour (computed once when the quote was built: ``FundingQuote.hourly_rate_or_none``)
   and ``c`` a per-venue lower bound of the leg's round-trip fee (plus estimated slippage) per
   hour and unit of notional. A symbol's first bound is ``max(h - c) - min(h + c)``; only the
   running max and min are kept per symbol, with its quotes.
2. When a symbol reaches the top, its most promising legs are looked at closely (book present,
   fresh and sane) and ``c`` grows by the leg's bid-ask spread, which every round trip crosses;
   only as many legs as needed to tighten ``max``/``min`` are looked at.
3. At the top again (at once if it still leads), all its legs are looked at and its pairs are
   enumerated best bound first, ``((h_s - c_s) - (h_l + c_l)) x horizon x notional``; one pair
   at a time is in the heap (the next enters when the previous pops).
4. A pair at the top is sized (instruments present, lot rounding, minimums, price-divergence
   gate) and, before its books are walked, re-bounded with its real size, basis and touch prices
   (``_touch_net``); if something else now leads it goes back, else it is evaluated exactly and
   goes back with its exact net. An exact result is emitted once it beats every remaining bound,
   so the top ``limit`` equal the first ``limit`` of evaluating and sorting all pairs
   (``ranking_key``); ``limit=None`` evaluates every pair.

Why the bounds hold (``q`` size, ``m`` a leg's mid, ``f`` its fee fraction, ``ref = (m_l + m_s)/2``,
``d`` = ``max_price_divergence``): for one leg, fees + slippage of the round trip are
``q((1+f) vwap_buy - (1-f) vwap_sell) >= q((ask - bid) + 2 f m)`` because a buy never averages
below the ask nor a sell above the bid (``book_costs`` rejects books where they would); the basis
is ``>= 0``; the divergence gate keeps ``m / ref`` within ``[1 - d/2, 1 + d/2]``; and the
lot-rounded notional ``q x ref`` never exceeds ``notional_usd`` while the spread is ``>= 0``.
A tiny slack covers Decimal rounding. With estimated costs the same holds with marks for mids,
no bid-ask term, and the estimated slippage added to ``f``.

Missing or bad data never raises: the leg or pair is skipped and an empty list is a valid answer.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Collection, Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from operator import itemgetter

from bot.core.domain import (
    BPS,
    ZERO,
    ExecutionMode,
    FeeSchedule,
    FundingQuote,
    Instrument,
    Liquidity,
    MarketSnapshot,
    Opportunity,
    PairKind,
    is_spot,
    pair_kind,
)
from bot.core.funding_math import (
    CostBreakdown,
    adverse_basis_usd,
    apr_from_hourly,
    book_costs,
    breakeven_hours,
    common_lot_step,
    estimated_costs,
    expected_net,
    floor_to_step,
)
from bot.core.maker_taker import leg_fee_rates, round_trip_rate_floor

__all__ = [
    "DEFAULT_ESTIMATED_SLIPPAGE_BPS",
    "DEFAULT_MAX_PRICE_DIVERGENCE",
    "evaluate_pair",
    "rank_opportunities",
    "ranking_key",
]

DEFAULT_ESTIMATED_SLIPPAGE_BPS = Decimal(2)
DEFAULT_MAX_PRICE_DIVERGENCE = Decimal("0.05")
_ONE = Decimal(1)
_TWO = Decimal(2)
_BOUND_SLACK = Decimal("1e-18")  # relative; far above Decimal's 28-digit rounding, far below a cent
# Kinds of bound entries in the heap: a symbol from the first pass, a symbol whose bound was
# tightened, the next pair of a symbol, a sized pair.
_SYMBOL, _TIGHTER_SYMBOL, _PAIR, _SIZED_PAIR = 0, 1, 2, 3

# A leg of a symbol at the top of the heap, before and after its close look (mutable):
# [h - c, h + c, quote, _Leg | None once looked at, else _UNSEEN]
_RawLeg = list
_UNSEEN = object()
_first, _second = itemgetter(0), itemgetter(1)

# A leg that passed the close look, as a plain tuple (built in the hot path; a dataclass costs 10x):
# (venue, quote, hourly, short_score = h - c, long_cost = h + c, fees, book | None,
#  mid: the book mid, or the mark price (None if unusable) when costs are estimated).
# Its instrument is looked up when a pair with it is sized.
_Leg = tuple
_VENUE, _QUOTE, _HOURLY, _SHORT_SCORE, _LONG_COST, _FEES, _BOOK, _MID = range(8)
_short_score, _long_cost = itemgetter(_SHORT_SCORE), itemgetter(_LONG_COST)


@dataclass(frozen=True, slots=True)
class _Params:
    notional_usd: Decimal
    horizon_hours: Decimal
    min_ts_ms: int  # quotes and books older than this are stale
    liquidity: Liquidity
    execution: ExecutionMode  # which fees each execution pays (``bot.core.maker_taker.leg_fee_rates``)
    estimated_slippage_bps: Decimal
    max_price_divergence: Decimal
    estimated: bool  # the snapshot has no books: cost from marks + estimated slippage
    spread_factor: Decimal  # (1 - d/2) / horizon: bid-ask spread fraction -> per-hour bound term
    pair_kinds: frozenset[PairKind] = frozenset({PairKind.PERP_PERP})  # which pairs may be ranked


def ranking_key(opp: Opportunity) -> tuple[Decimal, Decimal, str, str, str]:
    """Sort key of the ranking: expected net desc, then APR desc, then names (deterministic)."""
    return (-opp.expected_net, -opp.apr, opp.symbol, opp.long_venue, opp.short_venue)


def rank_opportunities(
    snapshot: MarketSnapshot,
    *,
    notional_usd: Decimal,
    horizon_hours: Decimal,
    max_quote_age_ms: int,
    liquidity: Liquidity = Liquidity.TAKER,
    min_expected_net_usd: Decimal | None = None,
    limit: int | None = None,
    allowed_symbols: Collection[str] | None = None,
    estimated_slippage_bps: Decimal = DEFAULT_ESTIMATED_SLIPPAGE_BPS,
    max_price_divergence: Decimal = DEFAULT_MAX_PRICE_DIVERGENCE,
    execution: ExecutionMode = ExecutionMode.TAKER,
    pair_kinds: Collection[PairKind] | None = None,
) -> list[Opportunity]:
    """Rank the pairs of ``snapshot`` by expected net USD over ``horizon_hours`` for ``notional_usd``.

    ``pair_kinds`` (default: perp-perp only) chooses which pairs are ranked: ``PERP_PERP`` (two perps)
    and/or ``SPOT_PERP`` (carry: LONG a spot market "<venue>:spot", SHORT a perp; the spot leg's funding
    is 0 and it is costed exactly like a perp leg: its own fees, book slippage, the basis to the perp).
    A spot leg is never the short leg (no borrowing); spot quotes are ignored unless carry is enabled.

    Returns at most ``limit`` opportunities (all when None) with ``expected_net >=
    min_expected_net_usd`` (when given), ordered by ``ranking_key``. Skipped without error: symbols
    on one venue, legs without a fresh quote (age > ``max_quote_age_ms`` vs ``snapshot.now_ts_ms``)
    or with an unusable one (``FundingQuote.hourly_rate_or_none`` None: a NaN or infinite rate, a
    non-positive interval) or one filed under another key than its own (venue, symbol), venues
    without a fee schedule, and pairs without a fresh two-sided book, an instrument, a common
    lot-rounded size meeting both venues' minimums, enough sane depth for entry AND exit, or whose
    mids are more than ``max_price_divergence`` (fraction of their average) apart.

    A snapshot with quotes but NO books (historical replay) is costed from the mark prices, fees and
    ``estimated_slippage_bps`` per leg per execution; such opportunities have
    ``costs_estimated=True`` and instruments are optional (a leg without one adds no lot rule). A
    leg whose mark price is not positive borrows the other leg's; a pair with none is skipped.
    """
    return list(iter_opportunities(
        snapshot, notional_usd=notional_usd, horizon_hours=horizon_hours, max_quote_age_ms=max_quote_age_ms,
        liquidity=liquidity, min_expected_net_usd=min_expected_net_usd, limit=limit,
        allowed_symbols=allowed_symbols, estimated_slippage_bps=estimated_slippage_bps,
        max_price_divergence=max_price_divergence, execution=execution, pair_kinds=pair_kinds))


def iter_opportunities(
    snapshot: MarketSnapshot,
    *,
    notional_usd: Decimal,
    horizon_hours: Decimal,
    max_quote_age_ms: int,
    liquidity: Liquidity = Liquidity.TAKER,
    min_expected_net_usd: Decimal | None = None,
    limit: int | None = None,
    allowed_symbols: Collection[str] | None = None,
    estimated_slippage_bps: Decimal = DEFAULT_ESTIMATED_SLIPPAGE_BPS,
    max_price_divergence: Decimal = DEFAULT_MAX_PRICE_DIVERGENCE,
    execution: ExecutionMode = ExecutionMode.TAKER,
    pair_kinds: Collection[PairKind] | None = None,
) -> Iterator[Opportunity]:
    """``rank_opportunities``'s results one at a time, best first: each is searched for only when
    asked for (the bound-pruned search stops at the first exact net no bound can beat), so taking
    the best one evaluates fewer pairs than ranking ``limit``. The arguments are checked at once;
    the search reads only ``snapshot`` (its books, instruments and fees are the objects it holds),
    so a later step gives what the eager ranking gave."""
    params = _params(snapshot, notional_usd, horizon_hours, max_quote_age_ms, liquidity, estimated_slippage_bps,
                     max_price_divergence, execution, pair_kinds)
    if PairKind.SPOT_PERP not in params.pair_kinds and any(is_spot(v) for v, _s in snapshot.quotes):
        snapshot = replace(snapshot, quotes={k: q for k, q in snapshot.quotes.items() if not is_spot(k[0])})
    if limit is not None and limit < 0:
        raise ValueError(f"limit must not be negative, got {limit}")
    if limit == 0:
        return iter(())
    return _search(snapshot, params, min_expected_net_usd, limit, allowed_symbols)


def _search(snapshot: MarketSnapshot, params: _Params, min_expected_net_usd: Decimal | None, limit: int | None,
            allowed_symbols: Collection[str] | None) -> Iterator[Opportunity]:
    """The best-first search of ``iter_opportunities`` (a generator: it runs as results are taken)."""
    notional_usd, horizon_hours = params.notional_usd, params.horizon_hours
    fee_terms = _fee_terms(snapshot, params)
    scale = horizon_hours * notional_usd
    slack = (scale + notional_usd) * _BOUND_SLACK

    def usd_bound(score: Decimal) -> Decimal:
        # A non-positive score bounds the net by q x ref x score <= 0 (lot rounding shrinks q).
        return score * scale + slack if score > ZERO else slack

    # Entries pop smallest first. Bound: (-bound, 0, seq, kind, payload); exact:
    # (-net, 1, -apr, symbol, long, short, opportunity). At equal values a bound pops before an
    # exact entry, so an exact entry is emitted only when no unevaluated pair can beat or tie it;
    # exact entries then pop in ``ranking_key`` order ((symbol, long, short) is unique).
    groups = _first_pass(snapshot, params, fee_terms, allowed_symbols)
    heap = _symbol_entries(groups, scale, slack)
    heapq.heapify(heap)
    seq = itertools.count(len(groups))
    heappush, heappop = heapq.heappush, heapq.heappop

    emitted = 0
    while heap:
        entry = heappop(heap)
        if min_expected_net_usd is not None and -entry[0] < min_expected_net_usd:
            return  # every remaining bound and net is at most this one
        if entry[1] == 1:
            yield entry[6]
            emitted += 1
            if limit is not None and emitted >= limit:
                return
            continue
        kind, payload = entry[3], entry[4]
        if kind == _SYMBOL:
            work = _SymbolWork(payload[0], payload[1], snapshot, fee_terms, params)
            score = work.tighter_score()
            if score is None:
                continue
            bound = usd_bound(score)
            if (heap and bound < -heap[0][0]) or (min_expected_net_usd is not None and bound < min_expected_net_usd):
                heappush(heap, (-bound, 0, next(seq), _TIGHTER_SYMBOL, work))
                continue
            kind, payload = _TIGHTER_SYMBOL, work  # it still leads: on to its pairs at once
        if kind == _SIZED_PAIR:
            work, long_leg, short_leg, sized = payload
        else:
            if kind == _TIGHTER_SYMBOL:
                work, current = payload, None
                work.start_pairs()
            else:
                work, current = payload
            following = work.next_pair()
            if following is not None:
                heappush(heap, (-usd_bound(following[0]), 0, next(seq), _PAIR, (work, following)))
            if current is None:
                continue
            long_leg, short_leg = current[1], current[2]
            sized = _sized(snapshot, work.symbol, long_leg, short_leg, params)
            if sized is None:
                continue
            if not params.estimated:
                # Before walking the books: the exact net but for depth beyond the touch. Requeue
                # the pair if that bound no longer leads.
                bound = _touch_net(long_leg, short_leg, sized, params) + slack
                if heap and bound < -heap[0][0]:
                    heappush(heap, (-bound, 0, next(seq), _SIZED_PAIR, (work, long_leg, short_leg, sized)))
                    continue
        opp = _evaluate(work.symbol, long_leg, short_leg, sized, params)
        if opp is not None:
            heappush(heap, (-opp.expected_net, 1, -opp.apr, work.symbol, opp.long_venue, opp.short_venue, opp))


def symbol_bound_usd(
    snapshot: MarketSnapshot,
    quotes: Collection[FundingQuote],
    *,
    notional_usd: Decimal,
    horizon_hours: Decimal,
    max_quote_age_ms: int,
    liquidity: Liquidity = Liquidity.TAKER,
    estimated_slippage_bps: Decimal = DEFAULT_ESTIMATED_SLIPPAGE_BPS,
    max_price_divergence: Decimal = DEFAULT_MAX_PRICE_DIVERGENCE,
    execution: ExecutionMode = ExecutionMode.TAKER,
) -> Decimal | None:
    """An upper bound of the expected net of every pair ``rank_opportunities`` could rank from
    ``quotes`` (one symbol's), the ranking's own first bound; None when fewer than two of them are
    usable, i.e. the symbol has no pair. Cheap: no book is read. As time passes quotes only turn
    stale, so a bound computed now stays a bound later."""
    params = _params(snapshot, notional_usd, horizon_hours, max_quote_age_ms, liquidity, estimated_slippage_bps,
                     max_price_divergence, execution)
    fee_terms = _fee_terms(snapshot, params)
    scale = horizon_hours * notional_usd
    slack = (scale + notional_usd) * _BOUND_SLACK
    groups = _first_pass(MarketSnapshot(now_ts_ms=snapshot.now_ts_ms, quotes={(q.venue, q.symbol): q for q in quotes},
                                        books={}, instruments={}, fees={}), params, fee_terms, None)
    best: Decimal | None = None
    for group in groups.values():
        if len(group) > 3:
            score = group[0] - group[1]
            bound = score * scale + slack if score > ZERO else slack
            best = bound if best is None or bound > best else best
    return best


def evaluate_pair(
    snapshot: MarketSnapshot,
    symbol: str,
    long_venue: str,
    short_venue: str,
    *,
    notional_usd: Decimal,
    horizon_hours: Decimal,
    max_quote_age_ms: int,
    liquidity: Liquidity = Liquidity.TAKER,
    estimated_slippage_bps: Decimal = DEFAULT_ESTIMATED_SLIPPAGE_BPS,
    max_price_divergence: Decimal = DEFAULT_MAX_PRICE_DIVERGENCE,
    execution: ExecutionMode = ExecutionMode.TAKER,
    pair_kinds: Collection[PairKind] | None = None,
) -> Opportunity | None:
    """Exact evaluation of LONG ``long_venue`` / SHORT ``short_venue`` in that direction (even when
    the spread is negative). None when ``rank_opportunities`` would skip the pair for missing,
    stale or bad data (or a pair kind not in ``pair_kinds``, a spot short); costs are estimated (as
    there) when the snapshot has no books."""
    params = _params(snapshot, notional_usd, horizon_hours, max_quote_age_ms, liquidity, estimated_slippage_bps,
                     max_price_divergence, execution, pair_kinds)
    if long_venue == short_venue or pair_kind(long_venue, short_venue) not in params.pair_kinds:
        return None
    fee_terms = _fee_terms(snapshot, params)
    legs: list[_Leg] = []
    for venue in (long_venue, short_venue):
        quote = snapshot.quotes.get((venue, symbol))
        if (quote is None or venue not in fee_terms or quote.ts_ms < params.min_ts_ms
                or quote.rank_hourly_rate_or_none is None or quote.venue != venue or quote.symbol != symbol):
            return None
        leg = _close_look(snapshot, symbol, quote, fee_terms, params)
        if leg is None:
            return None
        legs.append(leg)
    sized = _sized(snapshot, symbol, legs[0], legs[1], params)
    return None if sized is None else _evaluate(symbol, legs[0], legs[1], sized, params)


def _params(
    snapshot: MarketSnapshot,
    notional_usd: Decimal,
    horizon_hours: Decimal,
    max_quote_age_ms: int,
    liquidity: Liquidity,
    estimated_slippage_bps: Decimal,
    max_price_divergence: Decimal,
    execution: ExecutionMode = ExecutionMode.TAKER,
    pair_kinds: Collection[PairKind] | None = None,
) -> _Params:
    if not notional_usd > 0:
        raise ValueError(f"notional_usd must be positive, got {notional_usd}")
    if not horizon_hours > 0:
        raise ValueError(f"horizon_hours must be positive, got {horizon_hours}")
    if max_quote_age_ms < 0:
        raise ValueError(f"max_quote_age_ms must not be negative, got {max_quote_age_ms}")
    if not estimated_slippage_bps >= 0:
        raise ValueError(f"estimated_slippage_bps must not be negative, got {estimated_slippage_bps}")
    if not ZERO <= max_price_divergence < _ONE:
        raise ValueError(f"max_price_divergence must be in [0, 1), got {max_price_divergence}")
    return _Params(
        notional_usd=notional_usd,
        horizon_hours=horizon_hours,
        min_ts_ms=snapshot.now_ts_ms - max_quote_age_ms,
        liquidity=liquidity,
        execution=ExecutionMode(execution),
        estimated_slippage_bps=estimated_slippage_bps,
        max_price_divergence=max_price_divergence,
        estimated=not snapshot.books,
        spread_factor=(_ONE - max_price_divergence / _TWO) / horizon_hours,
        pair_kinds=frozenset({PairKind.PERP_PERP}) if pair_kinds is None else frozenset(map(PairKind, pair_kinds)),
    )


# The last fee terms computed per parameter set, with the fee items they came from: an incremental
# ranker re-ranks one symbol at a time against the same fee schedules (compared item by item; the
# schedule objects are usually the very same, so the comparison is an identity check).
_FEE_TERMS_CACHE: dict[tuple, tuple[tuple, dict[str, tuple[Decimal, FeeSchedule]]]] = {}


def _fee_terms(snapshot: MarketSnapshot, params: _Params) -> dict[str, tuple[Decimal, FeeSchedule]]:
    """Per venue: (lower bound of a leg's round-trip fee + estimated slippage per hour and unit of
    notional, ``2 f (1 -/+ d/2) / horizon`` with the sign of ``f`` picking the side; the schedule).
    The result is shared between calls with equal inputs: callers never modify it."""
    items = tuple(snapshot.fees.items())
    key = (params.execution, params.liquidity, params.estimated, params.estimated_slippage_bps,
           params.max_price_divergence, params.horizon_hours)
    cached = _FEE_TERMS_CACHE.get(key)
    if cached is not None and cached[0] == items:
        return cached[1]
    terms = _compute_fee_terms(snapshot, params)
    if len(_FEE_TERMS_CACHE) >= 64:
        _FEE_TERMS_CACHE.clear()
    _FEE_TERMS_CACHE[key] = (items, terms)
    return terms


def _compute_fee_terms(snapshot: MarketSnapshot, params: _Params) -> dict[str, tuple[Decimal, FeeSchedule]]:
    half_divergence = params.max_price_divergence / _TWO
    extra = params.estimated_slippage_bps * BPS if params.estimated else ZERO
    terms: dict[str, tuple[Decimal, FeeSchedule]] = {}
    for venue, schedule in snapshot.fees.items():
        # The least a leg on this venue pays for entry + exit in either role (maker or taker leg).
        fee = round_trip_rate_floor(schedule, params.execution, params.liquidity) + _TWO * extra
        if fee.is_finite():
            factor = _ONE - half_divergence if fee >= 0 else _ONE + half_divergence
            terms[venue] = (fee * factor / params.horizon_hours, schedule)
    return terms


def _first_pass(
    snapshot: MarketSnapshot,
    params: _Params,
    fee_terms: dict[str, tuple[Decimal, FeeSchedule]],
    allowed_symbols: Collection[str] | None,
) -> dict[str, list]:
    """symbol -> ``[max(h - c), min(h + c), quote, quote, ...]`` over the fresh quotes of venues
    with fees, by the quote's own venue and symbol (a quote filed in the snapshot under another
    key than its own is dropped later, by ``_SymbolWork`` or ``_sized``: it can only have widened
    the bound).

    The hot loop of the scanner, one iteration per quote, kept lean: ``h`` is the quote's rate
    per hour, computed once when the quote was built (``FundingQuote.hourly_rate_or_none``), and
    nothing is allocated per quote that outlives the iteration. A quote that is unusable (NaN or
    infinite rate, non-positive or non-finite interval: ``h`` is None) or on a venue without fees
    (``c`` None) fails the arithmetic with a TypeError and is skipped, so every ``h`` and ``c``
    here is a finite Decimal and the comparisons cannot meet a NaN.
    """
    quotes = snapshot.quotes.values()
    if allowed_symbols is not None:
        allowed = frozenset(allowed_symbols)
        quotes = [quote for quote in quotes if quote.symbol in allowed]
    min_ts = params.min_ts_ms
    get_c = {venue: term[0] for venue, term in fee_terms.items()}.get
    groups: dict[str, list] = {}
    get_group = groups.get
    for quote in quotes:
        if quote.ts_ms < min_ts:
            continue
        hourly = quote.rank_hourly_rate_or_none
        c = get_c(quote.venue)
        try:
            short_score, long_cost = hourly - c, hourly + c
        except TypeError:  # None: an unusable quote, or no fee schedule
            continue
        group = get_group(quote.symbol)
        if group is None:
            groups[quote.symbol] = [short_score, long_cost, quote]
        else:
            if short_score > group[0]:
                group[0] = short_score
            if long_cost < group[1]:
                group[1] = long_cost
            group.append(quote)
    return groups


def _symbol_entries(groups: dict[str, list], scale: Decimal, slack: Decimal) -> list[tuple]:
    """The heap entry of every symbol with two legs or more, bound ``max(h - c) - min(h + c)``
    in USD (as ``usd_bound``)."""
    entries = []
    append = entries.append
    neg_slack = -slack
    for n, (symbol, group) in enumerate(groups.items()):
        if len(group) > 3:
            score = group[0] - group[1]
            append((-(score * scale + slack) if score > ZERO else neg_slack, 0, n, _SYMBOL, (symbol, group)))
    return entries


class _SymbolWork:
    """Search state of one symbol once it has reached the top of the heap (internal, mutable)."""

    __slots__ = ("symbol", "_raw", "_snapshot", "_fee_terms", "_params", "_by_short", "_by_long", "_frontier")

    def __init__(self, symbol: str, group: list, snapshot: MarketSnapshot,
                 fee_terms: dict[str, tuple[Decimal, FeeSchedule]], params: _Params) -> None:
        self.symbol = symbol
        raw, venues = [], set()
        for quote in itertools.islice(group, 2, None):  # the quotes of _first_pass
            venues.add(quote.venue)
            hourly, c = quote.rank_hourly_rate_or_none, fee_terms[quote.venue][0]
            raw.append([hourly - c, hourly + c, quote, _UNSEEN])
        if len(venues) < len(raw):  # a venue twice: a quote is filed under another key than its own
            get_quote, own = snapshot.quotes.get, {}
            for raw_leg in raw:
                if get_quote((raw_leg[2].venue, symbol)) is raw_leg[2]:
                    own[raw_leg[2].venue] = raw_leg
            raw = list(own.values())
        self._raw = raw
        self._snapshot, self._fee_terms, self._params = snapshot, fee_terms, params
        self._by_short: list[_Leg] = []
        self._by_long: list[_Leg] = []
        self._frontier: list[tuple[Decimal, int, int]] = []

    def _look(self, raw: _RawLeg) -> _Leg | None:
        leg = raw[3]
        if leg is _UNSEEN:
            leg = raw[3] = _close_look(self._snapshot, self.symbol, raw[2], self._fee_terms, self._params)
        return leg

    def tighter_score(self) -> Decimal | None:
        """``max(short_score) - min(long_cost)`` over the valid legs, looking closely at only as many
        legs as needed: a raw ``h - c`` (``h + c``) bounds the leg's score from above (cost from below)."""
        look = self._look
        best_short = None
        for raw in sorted(self._raw, key=_first, reverse=True):
            if best_short is not None and best_short >= raw[0]:
                break
            leg = look(raw)
            if leg is not None and (best_short is None or leg[_SHORT_SCORE] > best_short):
                best_short = leg[_SHORT_SCORE]
        if best_short is None:
            return None
        best_long = None
        for raw in sorted(self._raw, key=_second):
            if best_long is not None and best_long <= raw[1]:
                break
            leg = look(raw)
            if leg is not None and (best_long is None or leg[_LONG_COST] < best_long):
                best_long = leg[_LONG_COST]
        if best_long is None:
            return None
        return best_short - best_long

    def start_pairs(self) -> None:
        """Look at every leg and seed the enumeration of pairs by descending bound."""
        legs = [leg for leg in map(self._look, self._raw) if leg is not None]
        if len(legs) < 2:
            return
        self._by_short = sorted(legs, key=_short_score, reverse=True)
        self._by_long = sorted(legs, key=_long_cost)
        self._frontier = [(self._by_long[0][_LONG_COST] - self._by_short[0][_SHORT_SCORE], 0, 0)]

    def next_pair(self) -> tuple[Decimal, _Leg, _Leg] | None:
        """The next (score, long leg, short leg) in descending score; None when exhausted.

        Classic k-best sums of two sorted lists over (short i, long j); an ordered pair that is
        not the profitable direction (or pairs a leg with itself) is skipped: its reverse has a
        higher score and is enumerated on its own.
        """
        shorts, longs, frontier = self._by_short, self._by_long, self._frontier
        while frontier:
            neg_score, i, j = heapq.heappop(frontier)
            if j + 1 < len(longs):
                heapq.heappush(frontier, (longs[j + 1][_LONG_COST] - shorts[i][_SHORT_SCORE], i, j + 1))
            if j == 0 and i + 1 < len(shorts):
                heapq.heappush(frontier, (longs[0][_LONG_COST] - shorts[i + 1][_SHORT_SCORE], i + 1, 0))
            short_leg, long_leg = shorts[i], longs[j]
            if short_leg is long_leg or not _is_long_side(long_leg, short_leg):
                continue
            if pair_kind(long_leg[_VENUE], short_leg[_VENUE]) not in self._params.pair_kinds:
                continue  # a spot short (never: no borrowing), or a kind the settings leave out
            return -neg_score, long_leg, short_leg
        return None


def _is_long_side(long_leg: _Leg, short_leg: _Leg) -> bool:
    """Long the lower hourly rate; equal rates go long the venue named first."""
    return long_leg[_HOURLY] < short_leg[_HOURLY] or (
        long_leg[_HOURLY] == short_leg[_HOURLY] and long_leg[_VENUE] < short_leg[_VENUE]
    )


def _close_look(
    snapshot: MarketSnapshot,
    symbol: str,
    quote: FundingQuote,
    fee_terms: dict[str, tuple[Decimal, FeeSchedule]],
    params: _Params,
) -> _Leg | None:
    """Validate one leg (book, or mark price when costs are estimated) and tighten its fee term
    with the bid-ask spread; None when the leg cannot be traded or costed. ``quote`` is usable
    (its ``hourly_rate_or_none`` is not None; checked when the quote was built) and on a venue
    with fees. Its instrument is checked when a pair is sized (``_sized``)."""
    hourly, venue = quote.rank_hourly_rate_or_none, quote.venue
    term = fee_terms[venue]
    c, fees = term
    book = None
    if params.estimated:
        mid = quote.mark_price
        if not (mid.is_finite() and mid > ZERO):
            mid = None  # the pair borrows the other leg's mark (see _sized)
    else:
        book = snapshot.books.get((venue, symbol))
        if book is None or not book.bids or not book.asks or book.ts_ms < params.min_ts_ms:
            return None  # live: never size an order without a fresh book
        # The rest depends only on (quote, book, fee term, spread factor): reused while they are the
        # same objects (an incremental re-rank looks again at the legs that did not change).
        hit = _LEG_CACHE.get(id(quote))
        if hit is not None and hit[0] is quote and hit[1] is book and hit[2] is term and hit[3] == params.spread_factor:
            return hit[4]
        bid, ask = book.bids[0].price, book.asks[0].price
        if not (bid.is_finite() and ask.is_finite() and ZERO < bid <= ask):
            return None
        mid = (bid + ask) / _TWO
        c += (ask - bid) / mid * params.spread_factor
        leg = (venue, quote, hourly, hourly - c, hourly + c, fees, book, mid)
        _remember(_LEG_CACHE, _LEG_CACHE_SIZE, id(quote), (quote, book, term, params.spread_factor, leg))
        return leg
    return (venue, quote, hourly, hourly - c, hourly + c, fees, book, mid)


# Close looks of recent legs by quote identity (entries keep the objects they were computed from).
_LEG_CACHE: dict[int, tuple] = {}
_LEG_CACHE_SIZE = 256


def _common_size(
    raw_base: Decimal, long_inst: Instrument | None, short_inst: Instrument | None, long_mid: Decimal,
    short_mid: Decimal,
) -> Decimal | None:
    """One base size valid on both venues, rounded down to their common lot step; None if none is."""
    step: Decimal | None = None
    for inst in (long_inst, short_inst):
        if inst is None:
            continue
        lot = inst.lot_size_base
        if not (lot.is_finite() and lot > ZERO):
            return None
        step = lot if step is None or step == lot else common_lot_step(step, lot)
    size = raw_base if step is None else floor_to_step(raw_base, step)
    if not size > ZERO:
        return None
    for inst, mid in ((long_inst, long_mid), (short_inst, short_mid)):
        if inst is not None and (size < inst.min_size_base or size * mid < inst.min_notional_usd):
            return None
    return size


# (reference price, common size, long mid, short mid)
_Sized = tuple[Decimal, Decimal, Decimal, Decimal]


def _sized(snapshot: MarketSnapshot, symbol: str, long_leg: _Leg, short_leg: _Leg, params: _Params) -> _Sized | None:
    """Size a pair; None when a leg's quote is filed in the snapshot under another key than its own
    (venue, symbol), a leg has no instrument (live), the mids diverge absurdly or no size fits
    both venues.

    With estimated costs instruments are optional and a leg without a usable mark price of its own
    (none, or the symbol's reference price in history) borrows the other leg's, so no basis is
    invented; a pair with no price at all is skipped.
    """
    quotes, instruments = snapshot.quotes, snapshot.instruments
    long_key, short_key = (long_leg[_VENUE], symbol), (short_leg[_VENUE], symbol)
    if quotes.get(long_key) is not long_leg[_QUOTE] or quotes.get(short_key) is not short_leg[_QUOTE]:
        return None  # a quote filed under another key is not a leg (``evaluate_pair`` agrees)
    long_inst, short_inst = instruments.get(long_key), instruments.get(short_key)
    if not params.estimated and (long_inst is None or short_inst is None):
        return None  # live: never size an order without the venue's lot rules
    long_quote, short_quote = long_leg[_QUOTE], short_leg[_QUOTE]
    memo_key = (id(long_quote), id(short_quote), params.notional_usd, params.max_price_divergence, params.estimated)
    hit = _SIZED_CACHE.get(memo_key)
    if (hit is not None and hit[0] is long_quote and hit[1] is short_quote and hit[2] is long_leg[_BOOK]
            and hit[3] is short_leg[_BOOK] and hit[4] is long_inst and hit[5] is short_inst):
        return hit[6]
    sized = _size_pair(long_leg, short_leg, long_inst, short_inst, params)
    _remember(_SIZED_CACHE, _PAIR_CACHE_SIZE, memo_key,
              (long_quote, short_quote, long_leg[_BOOK], short_leg[_BOOK], long_inst, short_inst, sized))
    return sized


# Sizings of recent pairs, by the legs' quote identity (entries keep the objects they came from).
_SIZED_CACHE: dict[tuple, tuple] = {}
_PAIR_CACHE_SIZE = 128


def _size_pair(long_leg: _Leg, short_leg: _Leg, long_inst: Instrument | None, short_inst: Instrument | None,
               params: _Params) -> _Sized | None:
    long_mid, short_mid = long_leg[_MID], short_leg[_MID]
    if long_leg[_QUOTE].mark_is_reference and long_leg[_BOOK] is None:
        long_mid = None  # a borrowed reference price is no price of this venue: no basis against it
    if short_leg[_QUOTE].mark_is_reference and short_leg[_BOOK] is None:
        short_mid = None if long_mid is not None else short_mid
    if long_mid is None or short_mid is None:
        long_mid = short_mid = long_mid if long_mid is not None else short_mid
        if long_mid is None:
            return None
    ref_price = (long_mid + short_mid) / _TWO
    if abs(long_mid - short_mid) > params.max_price_divergence * ref_price:
        return None  # absurd data (or a contract-size mismatch between venues)
    size = _common_size(params.notional_usd / ref_price, long_inst, short_inst, long_mid, short_mid)
    return None if size is None else (ref_price, size, long_mid, short_mid)


def _pair_execution(long_leg: _Leg, params: _Params) -> ExecutionMode:
    """How the pair's entry executes: carry (a spot long leg) is always taker-taker (bot.engine.entry);
    the settings' mode otherwise. The per-venue fee floors of the bounds stay valid (a maker-taker
    floor is never above the taker one)."""
    return ExecutionMode.TAKER if is_spot(long_leg[_VENUE]) else params.execution


def _touch_net(long_leg: _Leg, short_leg: _Leg, sized: _Sized, params: _Params) -> Decimal:
    """Upper bound of the exact net: fees, bid-ask spread and basis as in ``book_costs``, but every
    fill priced at the touch (walking deeper only costs more). Memoised like ``_evaluate``."""
    long_quote, short_quote = long_leg[_QUOTE], short_leg[_QUOTE]
    key = (id(long_quote), id(short_quote), sized, params.horizon_hours, params.liquidity, params.execution)
    hit = _TOUCH_CACHE.get(key)
    if (hit is not None and hit[0] is long_quote and hit[1] is short_quote and hit[2] is long_leg[_BOOK]
            and hit[3] is short_leg[_BOOK] and hit[4] is long_leg[_FEES] and hit[5] is short_leg[_FEES]):
        return hit[6]
    net = _touch_net_now(long_leg, short_leg, sized, params)
    _remember(_TOUCH_CACHE, _PAIR_CACHE_SIZE, key,
              (long_quote, short_quote, long_leg[_BOOK], short_leg[_BOOK], long_leg[_FEES], short_leg[_FEES], net))
    return net


_TOUCH_CACHE: dict[tuple, tuple] = {}


def _touch_net_now(long_leg: _Leg, short_leg: _Leg, sized: _Sized, params: _Params) -> Decimal:
    ref_price, size, long_mid, short_mid = sized
    long_book, short_book = long_leg[_BOOK], short_leg[_BOOK]
    rates = leg_fee_rates(long_leg[_FEES], short_leg[_FEES], _pair_execution(long_leg, params), params.liquidity)
    long_ask, long_bid = long_book.asks[0].price, long_book.bids[0].price
    short_ask, short_bid = short_book.asks[0].price, short_book.bids[0].price
    # Long: bought at >= ask, sold at <= bid; short: sold at <= bid, bought back at >= ask.
    touch = (
        long_ask - long_bid + rates.long_entry * long_ask + rates.long_exit * long_bid
        + short_ask - short_bid + rates.short_exit * short_ask + rates.short_entry * short_bid
    )
    income = (short_leg[_HOURLY] - long_leg[_HOURLY]) * params.horizon_hours * size * ref_price
    return income - touch * size - adverse_basis_usd(long_mid, short_mid, size * long_mid)


def _evaluate(symbol: str, long_leg: _Leg, short_leg: _Leg, sized: _Sized, params: _Params) -> Opportunity | None:
    """The exact opportunity of a sized pair. Memoised on the legs' objects (quotes, books, fee
    schedules) and the sizing: an incremental re-rank evaluates again the pairs that did not change."""
    long_quote, short_quote = long_leg[_QUOTE], short_leg[_QUOTE]
    key = (id(long_quote), id(short_quote), sized, params.horizon_hours, params.notional_usd, params.liquidity,
           params.execution, params.estimated, params.estimated_slippage_bps)
    hit = _EVALUATE_CACHE.get(key)
    if (hit is not None and hit[0] is long_quote and hit[1] is short_quote and hit[2] is long_leg[_BOOK]
            and hit[3] is short_leg[_BOOK] and hit[4] is long_leg[_FEES] and hit[5] is short_leg[_FEES]
            and hit[6] == symbol):
        return hit[7]
    opp = _evaluate_now(symbol, long_leg, short_leg, sized, params)
    _remember(_EVALUATE_CACHE, _EVALUATE_CACHE_SIZE, key,
              (long_quote, short_quote, long_leg[_BOOK], short_leg[_BOOK], long_leg[_FEES], short_leg[_FEES], symbol, opp))
    return opp


_EVALUATE_CACHE: dict[tuple, tuple] = {}
_EVALUATE_CACHE_SIZE = _PAIR_CACHE_SIZE


def _evaluate_now(symbol: str, long_leg: _Leg, short_leg: _Leg, sized: _Sized, params: _Params) -> Opportunity | None:
    long_book, short_book = long_leg[_BOOK], short_leg[_BOOK]
    if long_book is not None and short_book is not None:
        costs = _book_costs_memo(long_book, short_book, long_leg[_FEES], short_leg[_FEES], sized[1], params,
                                 _pair_execution(long_leg, params))
    else:
        ref_price, size, long_mid, short_mid = sized
        costs = estimated_costs(long_mid, short_mid, size, long_leg[_FEES], short_leg[_FEES], params.liquidity,
                                params.estimated_slippage_bps, _pair_execution(long_leg, params))
    return None if costs is None else _opportunity(symbol, long_leg, short_leg, sized, costs, params)


def _pair_book_costs(long_leg: _Leg, short_leg: _Leg, size: Decimal, params: _Params) -> CostBreakdown | None:
    """``book_costs`` of a sized pair with books; None for insufficient or inconsistent depth for
    the entry or the exit, or NaN/infinite levels deep in a book (bad data: the pair is skipped).
    Depends only on the legs' books and fee schedules, the size and the parameters."""
    try:
        return book_costs(long_leg[_BOOK], short_leg[_BOOK], long_leg[_FEES], short_leg[_FEES], size,
                          params.liquidity, _pair_execution(long_leg, params))
    except ArithmeticError:
        return None


def _opportunity(symbol: str, long_leg: _Leg, short_leg: _Leg, sized: _Sized, costs: CostBreakdown,
                 params: _Params) -> Opportunity:
    """The opportunity of a sized and costed pair (the funding side is the legs' quotes)."""
    ref_price, size = sized[0], sized[1]
    notional = size * ref_price
    spread = short_leg[_HOURLY] - long_leg[_HOURLY]
    total = costs.total_usd
    long_quote, short_quote = long_leg[_QUOTE], short_leg[_QUOTE]
    return Opportunity(
        symbol=symbol,
        long_venue=long_leg[_VENUE],
        short_venue=short_leg[_VENUE],
        long_rate=long_quote.rate_per_interval,
        long_interval_hours=long_quote.interval_hours,
        short_rate=short_quote.rate_per_interval,
        short_interval_hours=short_quote.interval_hours,
        spread_hourly=spread,
        apr=apr_from_hourly(spread),
        costs=total,
        expected_net=expected_net(spread, params.horizon_hours, notional, total),
        breakeven_hours=breakeven_hours(total, spread, notional),
        notional_usd=notional,
        horizon_hours=params.horizon_hours,
        fees_usd=costs.fees_usd,
        slippage_usd=costs.slippage_usd,
        basis_usd=costs.basis_usd,
        long_price=costs.long_entry_price,
        short_price=costs.short_entry_price,
        costs_estimated=params.estimated,
        size_base=size,
        current_spread_hourly=short_quote.hourly_rate_or_none - long_quote.hourly_rate_or_none,
    )


# Book walks of recent (book, book, fees, size) combinations. Books and fee schedules are immutable,
# so a pair re-ranked after a funding-rate change (same books) reuses its walk: the entry keeps the
# objects it was computed from and is used only when the very same objects come again (an id alone
# could be reused by a new object once the old one is gone). Bounded: cleared when full.
_BOOK_COSTS_CACHE: dict[tuple, tuple] = {}
_BOOK_COSTS_CACHE_SIZE = 64


def _book_costs_memo(long_book, short_book, long_fees: FeeSchedule, short_fees: FeeSchedule, size: Decimal,
                     params: _Params, execution: ExecutionMode) -> CostBreakdown | None:
    """``book_costs`` (None also for NaN/infinite levels deep in a book), memoised."""
    key = (id(long_book), id(short_book), id(long_fees), id(short_fees), size, params.liquidity, execution)
    hit = _BOOK_COSTS_CACHE.get(key)
    if hit is not None and hit[0] is long_book and hit[1] is short_book and hit[2] is long_fees \
            and hit[3] is short_fees:
        return hit[4]
    try:
        costs = book_costs(long_book, short_book, long_fees, short_fees, size, params.liquidity, execution)
    except ArithmeticError:  # NaN/infinite levels deep in a book: bad data, skip the pair
        costs = None
    _remember(_BOOK_COSTS_CACHE, _BOOK_COSTS_CACHE_SIZE, key, (long_book, short_book, long_fees, short_fees, costs))
    return costs


def _remember(cache: dict, size: int, key, value) -> None:
    """Store ``value`` in a bounded memo; when full, the older half (insertion order) is dropped,
    so a burst of one-off entries (a full ranking) does not flush what incremental re-ranks reuse."""
    if len(cache) >= size:
        for old in list(itertools.islice(cache, size // 2)):
            del cache[old]
    cache[key] = value
