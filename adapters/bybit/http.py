"""pybit's synchronous HTTP client driven from async code, safely.

- Every call runs in a worker thread (``anyio.to_thread``) behind a per-venue ``aiolimiter`` bucket
  (orders have their own, smaller bucket), and is SHIELDED: cancelling the awaiting task cannot
  un-send a request that a thread is already sending; the caller sees the cancellation after the
  answer is in.
- An order goes to a worker of its own (``OrderHandoff``) and the event loop waits, briefly and
  blocking, until that worker has started and written the request: a worker that only wakes up when
  the loop next sleeps (or when the interpreter's 5 ms switch interval forces the GIL over) left a
  Bybit order in its queue for 3-6 ms while the loop prepared the other leg (measured in
  ``bench/live.py``). A loop that busy-polls (``live.busy_poll``) blocks while the worker runs
  (``bot.core.busy_poll.quiet_loop``).
- pybit's automatic retries are off (``max_retries=1, retry_codes={-1}, force_retry=False``: an
  empty set would silently restore the defaults, which re-send POSTs after blocking sleeps).
- ``log_requests`` stays False (pybit would log the signed headers).
- Errors leave as our classes (``adapters.bybit.errors.translate``).
- ``base_url`` (already checked by ``adapters.endpoints``) replaces pybit's endpoint.
- pybit's ``requests`` session stops reading the environment on every request when there is
  nothing in it for ``requests`` (``environment_settings_in_use``): with ``trust_env`` on it scans
  every environment variable three times per request for proxy settings (~0.2 ms of an order's
  ~0.5 ms in pybit, more in a large environment). A proxy variable or a netrc file keeps
  ``requests``'s behaviour unchanged.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
from aiolimiter import AsyncLimiter

from adapters.bybit import config
from adapters.bybit.errors import translate
from adapters.credentials import Credentials
from adapters.rehearsal import guard_requests_session, rehearse_call
from bot.core.busy_poll import quiet_loop

def environment_settings_in_use(environ: Mapping[str, str] | None = None, home: Path | None = None) -> bool:
    """Whether ``requests`` would take anything from this environment on pybit's path: a proxy
    (``*_proxy`` variables, any case, ``no_proxy`` included; ``Session.send``) or netrc auth (the
    ``NETRC`` variable or a netrc file in the home directory; ``Session.prepare_request``). pybit
    never calls ``Session.request``, so the CA bundle variables are not read on it either way."""
    environ = os.environ if environ is None else environ
    if any(name.lower().endswith("_proxy") or name.upper() == "NETRC" for name in environ):
        return True
    home = Path(environ.get("HOME") or Path.home()) if home is None else home
    return any((home / name).exists() for name in (".netrc", "_netrc"))


HANDOFF_WAIT_S = 0.002  # the longest the event loop blocks handing an order to its worker
WRITE_WAIT_S = 0.003  # ...and then waiting for the worker to write the order's request
ORDER_WORKERS = 4  # orders in flight at once per client (a carry or a repair may send two together)


_written = threading.local()  # an order worker's "request written" callback (``OrderHandoff``)


class _SignalsWhenWritten:
    """urllib3 connection mixin: ``getresponse`` is called once the request is written; a worker
    thread that asked to be told (``_written.callback``) is told then, before waiting for the answer."""

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        callback = getattr(_written, "callback", None)
        if callback is not None:
            callback()
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


@functools.cache
def signalling_adapter_class() -> type:
    """A ``requests`` adapter (the library's own extension point) whose pools make connections that
    say when a request is written (``_SignalsWhenWritten``); otherwise requests' default adapter."""
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class SignallingHTTPConnection(_SignalsWhenWritten, HTTPConnection):
        pass

    class SignallingHTTPSConnection(_SignalsWhenWritten, HTTPSConnection):
        pass

    class SignallingHTTPPool(HTTPConnectionPool):
        ConnectionCls = SignallingHTTPConnection

    class SignallingHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = SignallingHTTPSConnection

    class SignallingAdapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": SignallingHTTPPool, "https": SignallingHTTPSPool}

    return SignallingAdapter


class OrderHandoff:
    """Runs order requests in worker threads of their own, written before the loop goes on.

    ``run(fn)`` queues ``fn`` on a worker and blocks the calling (event-loop) thread until the
    worker has begun it (at most ``HANDOFF_WAIT_S``) and then until its request is written (at most
    ``WRITE_WAIT_S``; told by the session's connections, ``signalling_adapter_class``), or ``fn``
    ended. Blocking on the events releases the GIL, so the worker has it to itself from the hand-over
    to the write: before, the loop took it back at the next switch interval (1 ms in live) to prepare
    the other leg, and the two threads traded it until pybit's request was out (bench/live.py: a
    Bybit leg from handed to its socket write up to 3.6 ms, p50 0.8). The other leg then goes; both
    are done in about the same CPU time either way. The answer is awaited normally.
    """

    def __init__(self, workers: int = ORDER_WORKERS, wait_s: float = HANDOFF_WAIT_S,
                 write_wait_s: float = WRITE_WAIT_S) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bybit-order")
        self._wait_s = wait_s
        self._write_wait_s = write_wait_s
        self.handoffs = 0
        self.waits_timed_out = 0
        self.write_waits_timed_out = 0  # requests not written within WRITE_WAIT_S (a new connection, ...)

    async def run(self, fn: Callable[[], Any]) -> Any:
        started = threading.Event()
        written = threading.Event()

        def begin() -> Any:
            with quiet_loop():  # a busy-polling loop blocks meanwhile: this thread has the CPU and GIL
                started.set()
                _written.callback = written.set
                try:
                    return fn()
                finally:
                    _written.callback = None
                    written.set()  # ended (answered, or failed before any request): stop waiting

        future = asyncio.get_running_loop().run_in_executor(self._pool, begin)
        self.handoffs += 1
        if not started.wait(self._wait_s):  # every worker busy: the order waits its turn
            self.waits_timed_out += 1
        elif not written.wait(self._write_wait_s):
            self.write_waits_timed_out += 1
        return await future


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
        if not environment_settings_in_use():
            self._session.client.trust_env = False  # nothing to read: skip the per-request scan
        guard_requests_session(self._session.client)  # no rehearsal's request leaves (adapters.rehearsal)
        adapter = signalling_adapter_class()
        for prefix in ("http://", "https://"):  # an order's worker is told when its request is written
            self._session.client.mount(prefix, adapter())
        self.recv_window_ms = recv_window_ms
        self._rest_limiter = AsyncLimiter(*config.REST_RATE)
        self._order_limiter = AsyncLimiter(*config.ORDER_RATE)
        self._orders = OrderHandoff()

    @property
    def endpoint(self) -> str:
        return str(self._session.endpoint)

    def rehearse(self, method: str, **params: Any) -> bool:
        """Run ``session.<method>(**params)`` on this thread up to its request and send nothing
        (``adapters.rehearsal``); True when it reached the guarded ``send``."""
        return rehearse_call(functools.partial(getattr(self._session, method), **params))

    async def call(self, method: str, *, order: bool = False, **params: Any) -> Mapping[str, Any]:
        """Call ``session.<method>(**params)``; return the JSON answer (retCode 0) or raise ours."""
        fn = functools.partial(getattr(self._session, method), **params)
        limiter = self._order_limiter if order else self._rest_limiter
        async with limiter:
            with anyio.CancelScope(shield=True):
                try:
                    answer = await (self._orders.run(fn) if order else anyio.to_thread.run_sync(fn))
                except Exception as exc:  # noqa: BLE001  (every pybit/requests failure is classified and re-raised)
                    raise translate(exc) from None
        if not isinstance(answer, Mapping):
            from adapters.errors import TemporaryVenueError

            raise TemporaryVenueError(config.VENUE, f"{method}: answer is not a JSON object, outcome unknown")
        return answer
