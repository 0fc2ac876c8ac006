"""Paper funding settlements derived from live funding quotes (``--paper --market live``).

Real venues settle funding themselves, but a paper position held against live data has no venue
to pay it: this module turns the live quotes into the settlements a venue would make. Each quote
says which rate the venue will settle (``rate_per_interval``) at which instant
(``next_funding_ts_ms``); the last quote seen before that instant decides the payment, exactly as
the venue's predicted rate becomes the settled one. Pure: no I/O, no clock of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.domain import FundingQuote, FundingSettlement


@dataclass(frozen=True, slots=True)
class _Pending:
    quote: FundingQuote  # the latest usable quote for this settlement instant


class LiveFundingSettler:
    """Remembers, per (venue, symbol), the next settlement the live quotes announce, and emits
    each one once when the time passes it."""

    def __init__(self) -> None:
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._settled: dict[tuple[str, str], int] = {}  # last settled instant per instrument

    def observe(self, quotes: list[FundingQuote]) -> None:
        """Take the latest quotes into account (call before ``due``). A quote without a usable
        rate or interval, or announcing an instant already settled, is ignored."""
        for quote in quotes:
            if quote.hourly_rate_or_none is None or quote.next_funding_ts_ms <= 0:
                continue
            key = (quote.venue, quote.symbol)
            if quote.next_funding_ts_ms <= self._settled.get(key, -1):
                continue
            current = self._pending.get(key)
            if current is not None and current.quote.next_funding_ts_ms < quote.next_funding_ts_ms:
                # The venue rolled over to its next instant while ours is still pending (a feed step
                # missed it): the earlier instant is still owed, settled on the rate last announced.
                continue
            if current is None or quote.ts_ms >= current.quote.ts_ms:
                self._pending[key] = _Pending(quote)

    def due(self, now_ms: int) -> list[FundingSettlement]:
        """The settlements whose instant is at or before ``now_ms`` (each returned once), oldest first."""
        out: list[FundingSettlement] = []
        for key, pending in list(self._pending.items()):
            q = pending.quote
            if q.next_funding_ts_ms > now_ms:
                continue
            del self._pending[key]
            self._settled[key] = q.next_funding_ts_ms
            out.append(FundingSettlement(venue=q.venue, symbol=q.symbol, ts_ms=q.next_funding_ts_ms,
                                         rate=q.rate_per_interval, interval_hours=q.interval_hours,
                                         mark_price=q.mark_price))
        return sorted(out, key=lambda s: (s.ts_ms, s.venue, s.symbol))


class PaperLiveFeed:
    """A live ``MarketFeed`` (books, quotes, instruments from the venues' public data) whose
    ``advance_to`` returns the paper funding settlements its quotes announce, so the paper
    executor pays held paper legs at each venue's real settlement instant."""

    def __init__(self, live: object) -> None:
        self._live = live
        self._settler = LiveFundingSettler()

    def __getattr__(self, name: str):  # venues, instruments, quotes, books, book, run, load_history, ...
        return getattr(self._live, name)

    def advance_to(self, ts_ms: int) -> list[FundingSettlement]:
        self._settler.observe(self._live.quotes())  # type: ignore[attr-defined]
        return self._settler.due(ts_ms)
