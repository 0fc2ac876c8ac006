"""Our own venue error classes, classified by what the caller should do.

Vendor errors (ccxt, pybit, aiohttp, the simulated venues' injected faults) are translated into
these in one place per adapter, so the engine never inspects a vendor exception.
"""

from __future__ import annotations


class VenueError(Exception):
    """Base class. ``venue`` names the venue; messages never contain secrets."""

    def __init__(self, venue: str, message: str) -> None:
        super().__init__(f"{venue}: {message}")
        self.venue = venue


class TemporaryVenueError(VenueError):
    """Retry with backoff. For an order, the outcome is UNKNOWN: look it up by client order id."""


class OrderNotFoundYet(TemporaryVenueError):
    """A look-up by client order id: the venue answered and does not know the order, but the request
    may still reach it (its venue-side expiry has not passed, e.g. just after a restart). The outcome
    is unknown, not a venue failure: look it up again later; it is never "can never execute" yet."""


class OrderRejected(VenueError):
    """The venue refused the order; nothing executed. Do not retry the same request."""


class FatalVenueError(VenueError):
    """Credentials, account or protocol problem: halt trading on this venue."""


class AbsurdVenueData(VenueError):
    """A payload failed sanity checks (NaN, non-positive price, rate beyond the cap). Never traded on."""


class IncompleteVenueData(AbsurdVenueData):
    """A payload lacks a field the datum needs (an unknown funding interval, a missing mark price):
    the datum is unusable and dropped, exactly like absurd data, but the message says what is missing."""
