"""pybit's synchronous HTTP client driven from async code, safely.

- Every call runs in a worker thread (``anyio.to_thread``) behind a per-venue ``aiolimiter`` bucket
  (orders have their own, smaller bucket), and is SHIELDED: cancelling the awaiting task cannot
  un-send a request that a thread is already sending; the caller sees the cancellation after the
  answer is in.
- pybit's automatic retries are off (``max_retries=1, retry_codes={-1}, force_retry=False``: an
  empty set would silently restore the defaults, which re-send POSTs after blocking sleeps).
- ``log_requests`` stays False (pybit would log the signed headers).
- Errors leave as our classes (``adapters.bybit.errors.translate``).
- ``base_url`` (already checked by ``adapters.endpoints``) replaces pybit's endpoint.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import anyio
from aiolimiter import AsyncLimiter

from adapters.bybit import config
from adapters.bybit.errors import translate
from adapters.credentials import Credentials


class BybitHttp:
    """Async facade over ``pybit.unified_trading.HTTP``."""

    def __init__(self, *, credentials: Credentials | None, testnet: bool = False, base_url: str | None = None,
                 recv_window_ms: int = config.RECV_WINDOW_MS, timeout_s: float = 10.0) -> None:
        from pybit.unified_trading import HTTP

        self._session = HTTP(
            testnet=testnet,
            api_key=credentials.get("api_key") if credentials else None,
            api_secret=credentials.get("secret") if credentials else None,
            recv_window=recv_window_ms,
            max_retries=1,
            retry_codes={-1},
            force_retry=False,
            log_requests=False,
            timeout=timeout_s,
        )
        if base_url:
            self._session.endpoint = base_url
        self.recv_window_ms = recv_window_ms
        self._rest_limiter = AsyncLimiter(*config.REST_RATE)
        self._order_limiter = AsyncLimiter(*config.ORDER_RATE)

    @property
    def endpoint(self) -> str:
        return str(self._session.endpoint)

    async def call(self, method: str, *, order: bool = False, **params: Any) -> Mapping[str, Any]:
        """Call ``session.<method>(**params)``; return the JSON answer (retCode 0) or raise ours."""
        fn = functools.partial(getattr(self._session, method), **params)
        limiter = self._order_limiter if order else self._rest_limiter
        async with limiter:
            with anyio.CancelScope(shield=True):
                try:
                    answer = await anyio.to_thread.run_sync(fn)
                except Exception as exc:  # noqa: BLE001  (every pybit/requests failure is classified and re-raised)
                    raise translate(exc) from None
        if not isinstance(answer, Mapping):
            from adapters.errors import TemporaryVenueError

            raise TemporaryVenueError(config.VENUE, f"{method}: answer is not a JSON object, outcome unknown")
        return answer
