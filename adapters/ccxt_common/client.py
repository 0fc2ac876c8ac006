"""Build ONE ccxt.pro instance per venue (shared by the market feed and the executor).

``ccxt.pro`` classes are the async REST classes plus streams, so one object serves both. It is
imported here, lazily, only when a ccxt venue is configured. ``point_at`` rewrites every REST URL
(keeping each path) and every stream URL to a local base, after any sandbox switch, as LIVE.md
section 1 requires (``hostname`` alone does not work).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from adapters.rehearsal import REHEARSING, install_rehearsal_guard
from adapters.credentials import Credentials

_SCHEME_HOST = re.compile(r"^[a-z]+://[^/]+")

# Per-venue ccxt options that avoid extra private calls and unwanted side effects (LIVE.md section 2).
BASE_OPTIONS: dict[str, dict[str, Any]] = {
    "binanceusdm": {"fetchCurrencies": False, "fetchMargins": False, "recvWindow": 5000,
                    "defaultType": "swap", "warnOnFetchOpenOrdersWithoutSymbol": False},
    "okx": {"fetchMarkets": {"types": ["swap"]}, "defaultType": "swap"},
    "hyperliquid": {"builderFee": False, "approvedBuilderFee": True, "refSet": True, "defaultType": "swap"},
    "bybit": {"fetchMarkets": {"types": ["linear"]}, "enableUnifiedAccount": True, "enableUnifiedMargin": False},
}
CREDENTIAL_FIELDS: dict[str, dict[str, str]] = {
    "binanceusdm": {"api_key": "apiKey", "secret": "secret"},
    "binance": {"api_key": "apiKey", "secret": "secret"},  # Binance spot (the binanceusdm account's keys)
    "okx": {"api_key": "apiKey", "secret": "secret", "password": "password"},
    "hyperliquid": {"wallet_address": "walletAddress", "private_key": "privateKey"},
    "bybit": {"api_key": "apiKey", "secret": "secret"},
}


def rewrite_urls(urls: Any, base: str, ws_base: str | None) -> Any:
    """Every URL string in ``urls`` (nested dicts/lists) with its scheme+host replaced: http(s) by
    ``base``, ws(s) by ``ws_base`` (left alone when None). Paths and trailing slashes are kept."""
    if isinstance(urls, str):
        if urls.startswith(("ws://", "wss://")):
            return _SCHEME_HOST.sub(ws_base, urls) if ws_base else urls
        return _SCHEME_HOST.sub(base, urls) if urls.startswith(("http://", "https://")) else urls
    if isinstance(urls, Mapping):
        return {k: rewrite_urls(v, base, ws_base) for k, v in urls.items()}
    if isinstance(urls, list):
        return [rewrite_urls(v, base, ws_base) for v in urls]
    return urls


def point_at(exchange: Any, base_url: str, ws_url: str | None = None) -> None:
    """Send every REST call of ``exchange`` to ``base_url`` and every stream to ``ws_url``."""
    ws_base = ws_url or ("ws" + base_url[4:] if base_url.startswith("http") else None)
    exchange.urls["api"] = rewrite_urls(exchange.urls["api"], base_url.rstrip("/"), ws_base.rstrip("/") if ws_base else None)


PRECISION_MEMO_SIZE = 512


def install_precision_memo(exchange: Any) -> None:
    """Memoise the instance's ``decimal_to_precision`` (a pure function of its arguments, pure
    Python and slow): an order's price and amount are formatted by our check that ccxt would not
    alter them (``CcxtExecutor._refuse_if_ccxt_would_change``) and again by ccxt building the
    request, on the entry's path. Only float/int/str inputs are kept (exact keys; zero and NaN are
    never kept); errors are never kept; bounded (cleared when full)."""
    compute = getattr(exchange, "decimal_to_precision", None)
    if compute is None or getattr(compute, "_memoised", False):
        return
    memo: dict[tuple, Any] = {}

    def decimal_to_precision(*args: Any, **kwargs: Any) -> Any:
        # ccxt's own calls: (n, rounding_mode, precision, counting_mode, padding_mode), positional
        if kwargs or len(args) != 5:
            return compute(*args, **kwargs)
        n, precision = args[0], args[2]
        if type(n) not in _EXACT_KEYS or type(precision) not in _EXACT_KEYS or not n or n != n:
            return compute(*args)
        key = (type(n), type(precision), *args)
        hit = memo.get(key)
        if hit is None:
            hit = compute(*args)
            if len(memo) >= PRECISION_MEMO_SIZE:
                memo.clear()
            memo[key] = hit
        return hit

    decimal_to_precision._memoised = True  # type: ignore[attr-defined]
    exchange.decimal_to_precision = decimal_to_precision


_EXACT_KEYS = (float, int, str)


_ORDER_PRIORITY: ContextVar[bool] = ContextVar("ccxt_order_priority", default=False)


@contextmanager
def order_priority() -> Iterator[None]:
    """Requests made inside skip ccxt's client-side throttle (see ``install_order_priority``)."""
    token = _ORDER_PRIORITY.set(True)
    try:
        yield
    finally:
        _ORDER_PRIORITY.reset(token)


def _charge(throttler: Any, cost: Any) -> None:
    """Charge a request that skipped the queue to ccxt's leaky bucket: its tokens go down by the
    cost, so the reads after it wait for it and the instance's overall rate stays ccxt's. Done on
    the bucket directly (queueing a future instead keeps ccxt's refill loop waking every
    millisecond on the event loop, on the entry path). Other algorithms are not charged (our own
    per-venue limiter still bounds these requests)."""
    config = getattr(throttler, "config", None)
    if isinstance(config, dict) and config.get("algorithm", "leakyBucket") == "leakyBucket":
        config["tokens"] = config.get("tokens", 0) - (config.get("cost", 1.0) if cost is None else cost)


def install_order_priority(exchange: Any) -> None:
    """Let order placements and the look-ups of their outcome (``order_priority``) skip ccxt's
    throttle's queue; everything else keeps it.

    ccxt's throttle is one serial queue per instance: each request waits until the previous
    requests' cost has drained (a Hyperliquid balance read costs about a second), so an order
    queued behind the bot's background account reads left one leg seconds after the other
    (bench/live.py measured unhedged windows of p50 0.4 s, p99 3.3 s), and the look-up of a filled
    order's outcome waited 0.2-0.5 s the same way (the bot learnt of its fills that late). They are
    bounded by our own per-venue limiter (``dialect.rate``, below the venue's documented limits)
    and their cost is still charged to ccxt's bucket, so the reads behind them slow down instead.
    ``fetch2`` awaits ``self.throttle(cost)``: the override is on this instance only, and the flag
    is a context variable, so it holds for the placing task's own requests and no other.
    """
    original = exchange.throttle

    async def throttle(cost: Any = None) -> Any:
        if REHEARSING.get():  # a rehearsal sends nothing: no wait, no charge (``rehearsal``)
            return None
        if _ORDER_PRIORITY.get():
            _charge(exchange.throttler, cost)
            return None
        return await original(cost)

    exchange.throttle = throttle


def install_orders_first(exchange: Any) -> None:
    """Let an entry's orders go before ccxt.pro's stream handling (``bot.core.orders_first``).

    ccxt handles each stream message in a loop callback of its own (``Client.receive_loop``: the
    exchange's ``handle_message`` parses it and merges book deltas, ~0.1-1 ms), queued wherever the
    message arrived: one that arrived while the strategy pass was deciding ran between the decision
    and the orders. While a dispatch is starting its legs, messages are kept in arrival order and
    handled by a callback queued behind the legs (at most ``orders_first.MAX_YIELDS`` loop passes
    later); a message arriving while earlier ones wait joins them, so the order is never changed.
    ``Client`` objects take ``exchange.handle_message`` when they are created: install this before
    any stream is opened. A handler error is re-raised (logged by the event loop) after the rest
    of the waiting messages were handled.
    """
    import asyncio

    from bot.core import orders_first

    original = exchange.handle_message
    waiting: deque[tuple[Any, Any]] = deque()
    passes = [0]

    def drain() -> None:
        if orders_first.in_progress() and passes[0] < orders_first.MAX_YIELDS:
            passes[0] += 1
            asyncio.get_running_loop().call_soon(drain)
            return
        passes[0] = 0
        error: BaseException | None = None
        while waiting:
            client, message = waiting.popleft()
            try:
                original(client, message)
            except Exception as exc:  # noqa: BLE001 - re-raised below, after the others
                error = error or exc
        if error is not None:
            raise error

    def handle_message(client: Any, message: Any) -> Any:
        if not waiting and not orders_first.in_progress():
            return original(client, message)
        if not waiting:
            asyncio.get_running_loop().call_soon(drain)
        waiting.append((client, message))
        return None

    exchange.handle_message = handle_message


def build_exchange(venue: str, *, credentials: Credentials | None, testnet: bool = False,
                   base_url: str | None = None, ws_url: str | None = None,
                   options: Mapping[str, Any] | None = None, timeout_ms: int = 10_000) -> Any:
    """A configured ``ccxt.pro.<venue>`` instance (not yet connected; call ``load_markets``)."""
    import ccxt.pro as ccxtpro  # lazy: ~0.5 s and ~100 MB, never loaded by --paper

    from adapters.ccxt_common.keccak import install_fast_keccak

    install_fast_keccak()  # a Hyperliquid order's signature: ~0.2 ms instead of ~4 ms
    from adapters.ccxt_common.eager_writes import install_eager_request_writes

    install_eager_request_writes()  # (Python 3.11) an order's body leaves with the request, not a loop pass later
    config: dict[str, Any] = {
        "enableRateLimit": True,
        "timeout": timeout_ms,
        "options": {**BASE_OPTIONS.get(venue, {}), **(options or {})},
    }
    if credentials is not None:
        for role, key in CREDENTIAL_FIELDS.get(venue, {}).items():
            config[key] = credentials.get(role)
    exchange = getattr(ccxtpro, venue)(config)
    if testnet:
        if venue == "binanceusdm":
            exchange.enable_demo_trading(True)  # ccxt refuses binance's futures sandbox
        else:
            exchange.set_sandbox_mode(True)
    if base_url:
        point_at(exchange, base_url, ws_url)
    if venue == "okx":  # perps and okx:spot: orders carry a venue-side deadline (adapters/okx/dialect.py)
        from adapters.okx.dialect import install_order_deadline

        install_order_deadline(exchange)
    if venue == "hyperliquid":
        from adapters.hyperliquid.dialect import install_settled_client_init
        from adapters.hyperliquid.signing import install_fast_l1_signing

        install_settled_client_init(exchange)
        install_fast_l1_signing(exchange)  # an order's signature with its constant work done once
    install_order_priority(exchange)
    install_rehearsal_guard(exchange)  # before anything else wraps fetch: no rehearsal gets past it
    install_orders_first(exchange)
    install_precision_memo(exchange)
    return exchange
