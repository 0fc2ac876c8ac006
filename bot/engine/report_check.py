"""Is a venue's order report consistent enough to act on? (pure)

The engine moves a leg only by the FILLS a report carries (deduplicated by trade id), so a report
that says "filled" without the fills to show for it would count that size as zero: the start-up
repair would then send the leg a second time (a doubled, naked leg). Such a report is never applied:
the order's outcome stays unknown, it is read again, and no repair is decided on it.
"""

from __future__ import annotations

from bot.core.domain import ZERO, OrderReport


def report_problem(report: OrderReport, *, venue: str, client_order_id: str, symbol: str | None = None) -> str | None:
    """Why ``report`` cannot be taken as the answer for our order ``client_order_id`` on ``venue``
    (of ``symbol`` when known), or None when it can.

    Refused: a report of another order, venue or symbol; a fill of another venue or symbol; a filled
    size the fills do not add up to (fills summing to MORE is fine: a resting order that filled
    further between the order read and the trade read)."""
    if report.client_order_id != client_order_id:
        return f"the venue answered for order {report.client_order_id}, not {client_order_id}"
    if report.venue != venue:
        return f"the answer is from {report.venue}, not {venue}"
    if symbol is not None and report.symbol != symbol:
        return f"the venue reports it on {report.symbol}, but it was sent on {symbol}"
    strays = sorted({f"{f.venue} {f.symbol}" for f in report.fills if f.venue != venue or f.symbol != report.symbol})
    if strays:
        return f"its fills include trades of {', '.join(strays)}"
    from_fills = sum((f.size_base for f in report.fills), ZERO)
    if report.filled_base > from_fills:
        return (f"filled {report.filled_base} but its fills add up to {from_fills}"
                + (" (no fill rows)" if not report.fills else ""))
    return None
