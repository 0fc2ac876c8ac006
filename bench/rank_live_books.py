"""Benchmark: the incremental ranking on a live feed whose books move without new quotes. JSON on stdout.

    python bench/rank_live_books.py [--updates 5000] [--compare-every 10] [--symbols 500]
                                    [--out bench/results/rank_live_books.json]

A live venue streams many book updates between two funding polls; each is a new book object while
the quote object stays the same, so the ranking is told only the keys whose quote changed and the
incremental ranker re-reads the books of the legs it looked at (``IncrementalRanker._recheck_books``).
This measures what that costs and that it is right, on ``bench/scan.py``'s synthetic universe
(``--symbols`` x 8 venues, 20 levels) served by the real ``adapters.live.LiveMarketFeed`` (its
``book`` checks each book against the venue's mark) and snapshotted as a strategy pass does
(``bot.market_view.take_snapshot``, one per update). Each update moves one random key's book
(new object, same content, same quote), every other update one random key's funding rate, and
every fourth update the book of a leg of the current top 5 thins out (its first level taken).

Timed per update (wall and thread CPU, ms): ``IncrementalRanker.apply`` of the keys whose quote
changed + ``top(5)``, the book re-check included; against a full re-rank (``full_rank``, limit 5) of
the same snapshot every ``--compare-every`` updates (the reference, same run), which must be equal.
The same update sequence replayed with the re-check switched off (the ranker before the fix) gives
``mismatches_without_the_recheck``: how often its top 5 differed from the full ranking.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import statistics
import sys
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.live import LiveMarketFeed
from bench.scan import NOW_TS_MS, VENUES, build_universe
from bot.core.domain import FeeSchedule, FundingQuote, Instrument, OrderBook
from bot.incremental import IncrementalRanker, RankSettings, changed_keys, full_rank
from bot.market_view import take_snapshot

SETTINGS = RankSettings(notional_usd=Decimal(1000), horizon_hours=Decimal(72), max_quote_age_ms=60_000)


class _Part:
    """One venue's market-data part holding its latest quotes and books (what a stream keeps)."""

    def __init__(self, venue: str, fees: FeeSchedule) -> None:
        self.venue = venue
        self.fees = fees
        self.quotes_by_symbol: dict[str, FundingQuote] = {}
        self.books_by_symbol: dict[str, OrderBook] = {}
        self.instruments_by_symbol: dict[str, Instrument] = {}

    def instruments(self) -> list[Instrument]:
        return list(self.instruments_by_symbol.values())

    def fee_schedules(self) -> dict[str, FeeSchedule]:
        return {self.venue: self.fees}

    def quotes(self) -> list[FundingQuote]:
        return list(self.quotes_by_symbol.values())

    def quote(self, symbol: str) -> FundingQuote | None:  # as the real parts (the book mark check reads it)
        return self.quotes_by_symbol.get(symbol)

    def books(self) -> list[OrderBook]:
        return list(self.books_by_symbol.values())

    def book(self, symbol: str) -> OrderBook | None:
        return self.books_by_symbol.get(symbol)


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _stats(samples: list[float]) -> dict:
    return {"count": len(samples), "p50": round(statistics.median(samples), 4), "p90": round(_pct(samples, 0.9), 4),
            "p99": round(_pct(samples, 0.99), 4), "max": round(max(samples), 4)}


def _feed(symbols: int) -> tuple[LiveMarketFeed, dict[str, _Part]]:
    universe = build_universe(7, symbols, sorted(VENUES), 20)
    parts = {venue: _Part(venue, fees) for venue, fees in universe.fees.items()}
    for (venue, symbol), quote in universe.quotes.items():
        parts[venue].quotes_by_symbol[symbol] = quote
        parts[venue].books_by_symbol[symbol] = universe.books[(venue, symbol)]
        parts[venue].instruments_by_symbol[symbol] = universe.instruments[(venue, symbol)]
    return LiveMarketFeed(list(parts.values())), parts


def run(updates: int, compare_every: int, symbols: int, *, recheck: bool, seed: int = 11) -> dict:
    feed, parts = _feed(symbols)
    ranker = IncrementalRanker(SETTINGS, per_symbol=5)
    if not recheck:
        ranker._recheck_books = lambda snapshot: None  # type: ignore[method-assign]  # the ranker before the fix
    snapshot = take_snapshot(feed, NOW_TS_MS)
    ranker.rebuild(snapshot)
    top = ranker.top(snapshot, 5)
    rng = random.Random(seed)
    keys = sorted(snapshot.quotes)
    wall: list[float] = []
    cpu: list[float] = []
    full_wall: list[float] = []
    mismatches = compared = 0
    gc.collect()
    gc.disable()
    try:
        for n in range(updates):
            venue, symbol = keys[rng.randrange(len(keys))]
            part = parts[venue]
            part.books_by_symbol[symbol] = replace(part.books_by_symbol[symbol])  # a stream book update
            if n % 2:
                venue, symbol = keys[rng.randrange(len(keys))]
                part = parts[venue]
                old = part.quotes_by_symbol[symbol]
                shift = Decimal(rng.randint(-300, 300)).scaleb(-7)
                part.quotes_by_symbol[symbol] = replace(old, rate_per_interval=old.rate_per_interval + shift)
            if n % 4 == 0 and top:
                # a book of a leg of the current top 5 thins out (its first levels are taken): the
                # costs of the pairs on it change, and no quote says so
                opp = top[rng.randrange(len(top))]
                venue = opp.long_venue if rng.random() < 0.5 else opp.short_venue
                book = parts[venue].books_by_symbol[opp.symbol]
                if len(book.bids) > 2 and len(book.asks) > 2:
                    parts[venue].books_by_symbol[opp.symbol] = replace(book, bids=book.bids[1:], asks=book.asks[1:])
            previous = snapshot.quotes
            snapshot = take_snapshot(feed, NOW_TS_MS)
            changed = changed_keys(previous, snapshot.quotes) or set()
            start, cpu_start = time.perf_counter_ns(), time.thread_time_ns()
            ranker.apply(snapshot, changed)
            top = ranker.top(snapshot, 5)
            wall.append((time.perf_counter_ns() - start) / 1e6)
            cpu.append((time.thread_time_ns() - cpu_start) / 1e6)
            if n % compare_every == 0:
                start = time.perf_counter_ns()
                full = full_rank(snapshot, SETTINGS, 5)
                full_wall.append((time.perf_counter_ns() - start) / 1e6)
                compared += 1
                mismatches += full != top
    finally:
        gc.enable()
    return {"wall_ms": _stats(wall), "cpu_ms": _stats(cpu), "full_rerank_wall_ms": _stats(full_wall),
            "compared": compared, "mismatches": mismatches, "legs_watched_at_end": len(ranker._watched),
            "legs_refiled_for_a_book_change": ranker.books_rechanged}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=5000)
    parser.add_argument("--compare-every", type=int, default=10)
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "rank_live_books.json")
    args = parser.parse_args(argv)
    result: dict = {"universe": f"{args.symbols} symbols x 8 venues, 20 levels (bench/scan.py), LiveMarketFeed",
                    "updates": args.updates, "cpu_count": os.cpu_count(), "load_avg_at_start": os.getloadavg()}
    ours = run(args.updates, args.compare_every, args.symbols, recheck=True)
    before = run(args.updates, args.compare_every, args.symbols, recheck=False)
    result["incremental_with_book_recheck"] = ours
    result["mismatches_without_the_recheck"] = {"compared": before["compared"], "mismatches": before["mismatches"],
                                                "wall_ms": before["wall_ms"]}
    result["speedup_p50_wall_vs_full_rerank"] = round(ours["full_rerank_wall_ms"]["p50"] / ours["wall_ms"]["p50"], 1)
    result["recheck_cost_ratio_p50_wall"] = round(ours["wall_ms"]["p50"] / before["wall_ms"]["p50"], 2)
    result["load_avg_at_end"] = os.getloadavg()
    text = json.dumps(result, indent=2, default=str)
    args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
