"""Reference for the scanner benchmark: Hummingbot's funding-arb candidate selection, reimplemented.

A straightforward reimplementation of the selection logic of Hummingbot's
``scripts/v2_funding_rate_arb.py`` (``get_most_profitable_combination``,
``get_normalized_funding_rate_in_seconds``, ``get_current_profitability_after_fees``,
``get_best_arbitrage_candidate``) over our ``MarketSnapshot``, in Decimal, with no Hummingbot code:

* per token, every ordered connector combination (c1 != c2): ``|r1/s1 - r2/s2| x 86400``, where
  ``s`` is the connector's funding interval in seconds from a PER-CONNECTOR map (8 h default);
  the largest per-day spread wins (long the lower normalised rate). Upstream normalises inside
  the pair loop (twice per ordered pair); here each quote is normalised once per token, which
  gives the same numbers faster (generous to the reference in a speed comparison);
* for that best pair only: the marginal book price for the position's QUOTE volume on each side
  (``get_price_for_quote_volume``: the price of the level where the cumulative quote volume
  reaches the target), the entry basis ``(p_short - p_long) / p_long`` and ENTRY taker fees of
  both legs: ``trade_profitability``;
* ``net_profitability = funding_profitability (per day) + trade_profitability - exit buffer``.
  Upstream added a flat ``estimated_exit_cost_buffer`` (default 0.0005) in later versions; the
  classic script has none, which is our default here (``exit_cost_buffer=0``).

It is deliberately NOT corrected: this is what we compare our speed and our answers against.
Missing data is skipped instead of raising (Hummingbot would raise a KeyError).

``rates_from_quotes=True`` is a timing variant, not upstream behaviour: it reads each quote's
precomputed rate per hour (``FundingQuote.hourly_rate_or_none``, per-symbol interval) instead of
dividing by the per-connector interval, so the reference does no normalisation at all when timed
(the same precomputed input our scanner reads). Its per-day spread is then ``|h1 - h2| x 24``,
which also fixes the interval flaw, so its picks can differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from bot.core.domain import ZERO, FundingQuote, Liquidity, MarketSnapshot, OrderBook, OrderSide

FUNDING_PROFITABILITY_INTERVAL_S = 60 * 60 * 24
DEFAULT_INTERVAL_S = 60 * 60 * 8
# What the upstream script knows; every other connector is assumed to be 8 h.
HUMMINGBOT_INTERVAL_S = {"binance": 60 * 60 * 8, "hyperliquid": 60 * 60 * 1}


@dataclass(frozen=True, slots=True)
class ReferenceCandidate:
    """``side`` is "buy" when the reference goes long on ``connector_1`` (upstream TradeType)."""

    token: str
    connector_1: str
    connector_2: str
    side: str
    funding_profitability: Decimal  # per-day spread, fraction of notional
    trade_profitability: Decimal  # entry basis minus entry taker fees, fraction of notional
    net_profitability: Decimal

    @property
    def long_connector(self) -> str:
        return self.connector_1 if self.side == "buy" else self.connector_2

    @property
    def short_connector(self) -> str:
        return self.connector_2 if self.side == "buy" else self.connector_1


def reference_rank(
    snapshot: MarketSnapshot,
    *,
    tokens: list[str],
    connectors: list[str],
    position_size_quote: Decimal,
    interval_s_by_connector: dict[str, int] | None = None,
    exit_cost_buffer: Decimal = ZERO,
    rates_from_quotes: bool = False,
) -> list[ReferenceCandidate]:
    """Best candidate per token, sorted by ``net_profitability`` descending (upstream iterates tokens
    in set order and opens the first that passes its thresholds; sorting makes it a ranking).
    ``rates_from_quotes``: see the module docstring (a timing variant)."""
    intervals = HUMMINGBOT_INTERVAL_S if interval_s_by_connector is None else interval_s_by_connector
    candidates = []
    for token in tokens:
        candidate = _best_candidate(snapshot, token, connectors, position_size_quote, intervals, exit_cost_buffer,
                                    rates_from_quotes)
        if candidate is not None:
            candidates.append(candidate)
    candidates.sort(key=lambda c: c.net_profitability, reverse=True)
    return candidates


def _funding_info_by_token(snapshot: MarketSnapshot, token: str, connectors: list[str]) -> dict[str, FundingQuote]:
    report = {}
    for connector in connectors:
        quote = snapshot.quotes.get((connector, token))
        if quote is not None:
            report[connector] = quote
    return report


def _normalized_rate_per_s(report: dict[str, FundingQuote], connector: str, intervals: dict[str, int]) -> Decimal:
    return report[connector].rate_per_interval / intervals.get(connector, DEFAULT_INTERVAL_S)


def _most_profitable_combination(report: dict[str, FundingQuote], intervals: dict[str, int],
                                 rates_from_quotes: bool = False):
    if rates_from_quotes:
        rates = {c: q.hourly_rate_or_none for c, q in report.items() if q.hourly_rate_or_none is not None}
        periods = Decimal(FUNDING_PROFITABILITY_INTERVAL_S // 3600)  # rates per hour
    else:
        rates = {connector: _normalized_rate_per_s(report, connector, intervals) for connector in report}
        periods = Decimal(FUNDING_PROFITABILITY_INTERVAL_S)
    best = None
    highest = 0
    for connector_1, rate_1 in rates.items():
        for connector_2, rate_2 in rates.items():
            if connector_1 != connector_2:
                diff = abs(rate_1 - rate_2) * periods
                if diff > highest:
                    side = "buy" if rate_1 < rate_2 else "sell"
                    highest = diff
                    best = (connector_1, connector_2, side, diff)
    return best


def _price_for_quote_volume(book: OrderBook, is_buy: bool, quote_volume: Decimal) -> Decimal | None:
    cumulative = ZERO
    for level in book.levels_for(OrderSide.BUY if is_buy else OrderSide.SELL):
        cumulative += level.size_base * level.price
        if cumulative >= quote_volume:
            return level.price
    return None  # upstream returns NaN here


def _profitability_after_fees(
    snapshot: MarketSnapshot, token: str, connector_1: str, connector_2: str, side: str, size_quote: Decimal
) -> Decimal | None:
    book_1, book_2 = snapshot.books.get((connector_1, token)), snapshot.books.get((connector_2, token))
    fees_1, fees_2 = snapshot.fees.get(connector_1), snapshot.fees.get(connector_2)
    if book_1 is None or book_2 is None or fees_1 is None or fees_2 is None:
        return None
    price_1 = _price_for_quote_volume(book_1, side == "buy", size_quote)
    price_2 = _price_for_quote_volume(book_2, side != "buy", size_quote)
    if price_1 is None or price_2 is None:
        return None
    fee_1, fee_2 = fees_1.rate(Liquidity.TAKER), fees_2.rate(Liquidity.TAKER)
    if side == "buy":
        trade_pnl = (price_2 - price_1) / price_1
    else:
        trade_pnl = (price_1 - price_2) / price_2
    return trade_pnl - fee_1 - fee_2


def _best_candidate(
    snapshot: MarketSnapshot,
    token: str,
    connectors: list[str],
    size_quote: Decimal,
    intervals: dict[str, int],
    exit_cost_buffer: Decimal,
    rates_from_quotes: bool = False,
) -> ReferenceCandidate | None:
    report = _funding_info_by_token(snapshot, token, connectors)
    best = _most_profitable_combination(report, intervals, rates_from_quotes)
    if best is None:
        return None
    connector_1, connector_2, side, funding_profitability = best
    trade_profitability = _profitability_after_fees(snapshot, token, connector_1, connector_2, side, size_quote)
    if trade_profitability is None:
        return None
    return ReferenceCandidate(
        token=token,
        connector_1=connector_1,
        connector_2=connector_2,
        side=side,
        funding_profitability=funding_profitability,
        trade_profitability=trade_profitability,
        net_profitability=funding_profitability + trade_profitability - exit_cost_buffer,
    )
