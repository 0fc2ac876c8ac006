"""pybit / Bybit v5 answers -> our error classes, in one place (LIVE.md section 3).

pybit raises ``InvalidRequestError`` for a non-zero ``retCode`` (``status_code`` holds it),
``FailedRequestError`` for a non-200 HTTP status or an unparsable body, and lets raw ``requests``
exceptions escape on network failures. A duplicate ``orderLinkId`` (110072) means the first send
arrived: an unknown outcome to look up. Messages carry the code and Bybit's text only (pybit's own
exception text embeds the request parameters; we never forward it).
"""

from __future__ import annotations

from adapters.errors import (
    FatalVenueError,
    OrderRejected,
    TemporaryVenueError,
    VenueError,
)

VENUE = "bybit"

TEMPORARY_CODES = frozenset({10000, 10002, 10006, 10016, 10018, 10019, 110072, 170007, 170146})
FATAL_CODES = frozenset({10003, 10004, 10005, 10007, 10008, 10009, 10010, 10024, 10027, 10028, 10029, 33004})
DUPLICATE_CLIENT_ID = 110072
ORDER_NOT_FOUND = frozenset({110001, 170213})
NO_CHANGE = frozenset({110043, 110025, 110026, 34036})  # leverage / position mode / margin mode unchanged
_MAX_MESSAGE = 200


def classify_ret_code(code: int, message: str, venue: str = VENUE) -> VenueError:
    """The error class for a non-zero Bybit ``retCode``."""
    text = f"retCode {code}: {message[:_MAX_MESSAGE]}"
    if code == DUPLICATE_CLIENT_ID:
        return TemporaryVenueError(venue, f"duplicate orderLinkId (the first send arrived): look it up: {text}")
    if code in TEMPORARY_CODES:
        return TemporaryVenueError(venue, text)
    if code in FATAL_CODES:
        return FatalVenueError(venue, text)
    if 110000 <= code < 200000 or code in (10001, 10017):
        return OrderRejected(venue, text)
    return TemporaryVenueError(venue, f"unclassified answer, outcome unknown: {text}")


def translate(exc: BaseException, venue: str = VENUE) -> VenueError:
    """Map a pybit / requests exception to ``TemporaryVenueError`` / ``OrderRejected`` / ``FatalVenueError``."""
    if isinstance(exc, VenueError):
        return exc
    from pybit.exceptions import (  # light module, no side effects
        FailedRequestError,
        InvalidRequestError,
    )

    if isinstance(exc, InvalidRequestError):
        return classify_ret_code(_int(exc.status_code), str(exc.message), venue)
    if isinstance(exc, FailedRequestError):
        status = _int(exc.status_code)
        if status in (401,):
            return FatalVenueError(venue, f"HTTP {status}: {str(exc.message)[:_MAX_MESSAGE]}")
        return TemporaryVenueError(venue, f"HTTP/body failure {status}, outcome unknown: {str(exc.message)[:_MAX_MESSAGE]}")
    if isinstance(exc, PermissionError):  # pybit: "Authenticated endpoints require keys."
        return FatalVenueError(venue, "API key and secret are required for this call")
    # requests.exceptions.* (ConnectionError, ReadTimeout, SSLError), OSError, anything else
    return TemporaryVenueError(venue, f"transport error, outcome unknown: {type(exc).__name__}")


def ret_code_of(exc: BaseException) -> int | None:
    """Bybit's retCode carried by a pybit ``InvalidRequestError``, else None."""
    from pybit.exceptions import InvalidRequestError

    return _int(exc.status_code) if isinstance(exc, InvalidRequestError) else None


def _int(value: object) -> int:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return -1
