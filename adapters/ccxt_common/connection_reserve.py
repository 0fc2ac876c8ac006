"""Spare keep-alive connections to each ccxt venue (``live.spare_connections``).

A ccxt instance keeps one aiohttp connection pool per venue host, shared by the orders, their
look-ups, the account reads and the feed's REST polls. An order that finds every pooled
connection busy (a read in flight) or expired (aiohttp closes a connection idle for its
keep-alive, 15 s in ccxt's connector) opens a new one on the entry's path: a TCP handshake, and
on a real venue a TLS handshake too (several round trips). bench/live.py saw it on 1-2 of 120
Hyperliquid legs per run, 2.5-7 ms each on the local emulator.

``ConnectionReserve`` keeps ``spare`` idle connections open, fresh, to every host the instance
has used, opened in the background (never on an order's path):

- each tick it closes the pooled connections that are about to reach the keep-alive limit (so no
  order ever pops an expired one and closes it on its way) or that the venue closed, and opens
  connections until ``spare`` fresh idle ones wait in the pool;
- a connection opened here is the one aiohttp itself would open for that host (the same
  connector, the same connection key: checked) and goes to the pool exactly as a released one
  does. aiohttp takes the oldest idle connection first, so reads keep the spares in use and
  their ages moving.

It relies on four members of aiohttp's ``BaseConnector`` that are not public (``_conns``,
``_create_connection``, ``_release``, ``_keepalive_timeout``; aiohttp 3.9-3.14). When one is
missing (another aiohttp) the reserve logs that once and stops: orders then open connections
as they always did. It never raises into the supervisor; a host it cannot reach is retried with
a growing pause.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import anyio
from loguru import logger

TICK_S = 1.0
# A connection is replaced when it would reach the keep-alive limit within this much: it is
# then closed here, between orders, and not by the order that pops it.
RENEW_BEFORE_S = 3.0 * TICK_S
CONNECT_TIMEOUT_S = 10.0
MAX_RETRY_PAUSE_S = 60.0
_CONNECTOR_MEMBERS = ("_conns", "_create_connection", "_release", "_keepalive_timeout")


class ConnectionReserve:
    """Keeps ``spare`` fresh idle connections per host used by one ccxt instance."""

    def __init__(self, exchange: Any, *, venue: str, spare: int = 2) -> None:
        if spare < 1:
            raise ValueError("spare must be at least 1 (0 means no reserve: do not build one)")
        self.venue = venue
        self.spare = spare
        self._ex = exchange
        self._hosts: dict[Any, Any] = {}  # connection key -> the request that opens one like it
        self._not_reserved: set[Any] = set()  # keys seen that the reserve leaves alone (proxies)
        self._retry_at: dict[Any, float] = {}  # connection key -> monotonic s of the next attempt
        self._failures: dict[Any, int] = {}
        self.opened = 0  # connections opened by the reserve
        self.renewed = 0  # idle connections closed before their keep-alive ran out
        self.dropped = 0  # pooled connections found closed by the venue
        self.disabled: str | None = None  # why the reserve stopped (aiohttp without its members)

    def _connector(self) -> Any:
        session = getattr(self._ex, "session", None)
        return None if session is None else session.connector

    async def run(self) -> None:
        """Tick until cancelled (returns when the reserve disables itself)."""
        while True:
            await self.tick()
            if self.disabled is not None:
                return
            await anyio.sleep(TICK_S)

    async def tick(self, now_s: float | None = None) -> int:
        """One round: renew and top up every known host. Returns the connections opened."""
        connector = self._connector()
        if connector is None or getattr(connector, "closed", False):
            return 0  # ccxt opens its session with the first request
        missing = [name for name in _CONNECTOR_MEMBERS if not hasattr(connector, name)]
        if missing:
            self.disabled = f"aiohttp {type(connector).__name__} lacks {', '.join(missing)}"
            logger.bind(kind="connection_reserve").warning(
                f"{self.venue}: spare connections off ({self.disabled}); orders open connections as needed")
            return 0
        now = time.monotonic() if now_s is None else now_s
        self._learn_hosts(connector)
        opened = 0
        for key in list(self._hosts):
            fresh = self._renew(connector, key, now)
            if fresh < self.spare and now >= self._retry_at.get(key, 0.0):
                opened += await self._open(connector, key, self.spare - fresh)
        return opened

    def _learn_hosts(self, connector: Any) -> None:
        """Hosts come from the pool itself: a key appears there once a request to it has ended."""
        import asyncio

        from aiohttp import ClientRequest
        from yarl import URL

        for key in list(connector._conns):
            if key in self._hosts or key in self._not_reserved:
                continue
            if key.proxy is not None:  # through a proxy aiohttp builds its own tunnel: not reserved
                self._not_reserved.add(key)
                continue
            request = ClientRequest("GET", URL.build(scheme="https" if key.is_ssl else "http", host=key.host,
                                                     port=key.port), ssl=key.ssl,
                                    server_hostname=key.server_hostname, loop=asyncio.get_running_loop())
            if request.connection_key == key:
                self._hosts[key] = request
            else:  # a key we cannot reproduce: never open anything aiohttp would not reuse
                self._not_reserved.add(key)

    def _renew(self, connector: Any, key: Any, now: float) -> int:
        """Close the idle connections of ``key`` that are closed or about to expire; count the rest."""
        idle = connector._conns.get(key)
        if not idle:
            return 0
        limit = connector._keepalive_timeout
        keep = []
        for proto, released_at in idle:
            if not proto.is_connected():
                self.dropped += 1
            elif limit is not None and now - released_at > limit - RENEW_BEFORE_S:
                self.renewed += 1
            else:
                keep.append((proto, released_at))
                continue
            proto.close()
        if len(keep) != len(idle):
            idle.clear()
            idle.extend(keep)  # same deque, same order: aiohttp still takes the oldest first
        return len(keep)

    async def _open(self, connector: Any, key: Any, count: int) -> int:
        from aiohttp import ClientTimeout

        request = self._hosts[key]
        opened = 0
        for _ in range(count):
            try:
                # (bounded here: ``connect``'s own bound is around the call it makes, not in it)
                with anyio.fail_after(CONNECT_TIMEOUT_S):
                    proto = await connector._create_connection(
                        request, [], ClientTimeout(total=CONNECT_TIMEOUT_S, sock_connect=CONNECT_TIMEOUT_S))
            except Exception as exc:  # noqa: BLE001 - a reserve failure never stops trading: retried later
                failures = self._failures.get(key, 0) + 1
                self._failures[key] = failures
                pause = min(MAX_RETRY_PAUSE_S, TICK_S * 2 ** failures)
                self._retry_at[key] = time.monotonic() + pause
                if failures == 1:
                    logger.bind(kind="connection_reserve").warning(
                        f"{self.venue}: could not open a spare connection to {key.host}:{key.port} "
                        f"({type(exc).__name__}); retrying with a growing pause (orders are not affected)")
                break
            if getattr(connector, "closed", False):
                proto.close()
                break
            connector._release(key, proto)  # into the pool, stamped now, as aiohttp releases one
            opened += 1
            self._failures.pop(key, None)
        self.opened += opened
        return opened

    def idle_counts(self) -> dict[str, int]:
        """Idle pooled connections per known host (``host:port``): what an order finds now."""
        connector = self._connector()
        if connector is None or self.disabled:
            return {}
        return {f"{key.host}:{key.port}": len(connector._conns.get(key, ())) for key in self._hosts}


def reserves_for(venues: Iterable[Any], spare: int) -> list[ConnectionReserve]:
    """One reserve per distinct ccxt instance among the session's venues (``LiveVenue``; a venue
    whose executor has no ccxt instance, Bybit's pybit, is skipped)."""
    if spare < 1:
        return []
    reserves: dict[int, ConnectionReserve] = {}
    for venue in venues:
        exchange = getattr(venue.executor, "exchange", None)
        if exchange is not None and hasattr(exchange, "fetch2") and id(exchange) not in reserves:
            reserves[id(exchange)] = ConnectionReserve(exchange, venue=venue.name, spare=spare)
    return list(reserves.values())
