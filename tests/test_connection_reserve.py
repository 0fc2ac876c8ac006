"""Spare keep-alive connections per ccxt venue (adapters.ccxt_common.connection_reserve), against
a real local HTTP server and aiohttp's own connector."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from adapters.ccxt_common.connection_reserve import RENEW_BEFORE_S, ConnectionReserve, reserves_for

pytestmark = pytest.mark.asyncio


class Venue:
    """A local HTTP server; ``/slow`` answers after ``slow_s`` (a read holding its connection)."""

    def __init__(self, keepalive_s: float = 75.0) -> None:
        self.peers: set[tuple[str, int]] = set()  # client sockets the server has seen requests on
        self.slow_s = 0.2
        self._keepalive_s = keepalive_s
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def _fast(self, request: web.Request) -> web.Response:
        self.peers.add(request.transport.get_extra_info("peername"))
        return web.json_response({"ok": True})

    async def _slow(self, request: web.Request) -> web.Response:
        self.peers.add(request.transport.get_extra_info("peername"))
        await asyncio.sleep(self.slow_s)
        return web.json_response({"ok": True})

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/fast", self._fast)
        app.router.add_get("/slow", self._slow)
        self.runner = web.AppRunner(app, keepalive_timeout=self._keepalive_s)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


class Client:
    """A ccxt-like instance: ``session`` with the connector ccxt builds; counts new connections."""

    def __init__(self) -> None:
        self.created = 0
        trace = aiohttp.TraceConfig()

        async def on_create(session, ctx, params) -> None:  # noqa: ANN001 - aiohttp's trace signature
            self.created += 1

        trace.on_connection_create_end.append(on_create)
        connector = aiohttp.TCPConnector(enable_cleanup_closed=True)
        self.session = aiohttp.ClientSession(connector=connector, trace_configs=[trace])

    def fetch2(self) -> None:  # what marks a ccxt instance for ``reserves_for``
        raise AssertionError("not called")

    async def get(self, url: str) -> None:
        async with self.session.get(url) as response:
            assert response.status == 200
            await response.json()

    def idle(self) -> int:
        return sum(len(conns) for conns in self.session.connector._conns.values())


@pytest_asyncio.fixture
async def venue():
    server = Venue()
    base = await server.start()
    yield server, base
    await server.stop()


@pytest_asyncio.fixture
async def client():
    c = Client()
    yield c
    await c.session.close()


async def test_nothing_is_opened_before_the_instance_has_used_a_host(client: Client) -> None:
    reserve = ConnectionReserve(client, venue="v", spare=2)
    assert await reserve.tick() == 0
    assert client.created == 0 and reserve.idle_counts() == {}


async def test_spares_are_opened_in_the_background_and_an_order_beside_a_read_opens_none(venue, client) -> None:
    server, base = venue
    await client.get(base + "/fast")
    assert client.created == 1 and client.idle() == 1
    reserve = ConnectionReserve(client, venue="v", spare=2)
    assert await reserve.tick() == 1  # one idle already: one more makes two
    assert client.idle() == 2 and reserve.idle_counts() == {f"127.0.0.1:{server.port}": 2}
    assert await reserve.tick() == 0  # already topped up
    created_before = client.created
    # a read holds one connection; the order beside it takes the other: no new connection
    read = asyncio.create_task(client.get(base + "/slow"))
    await asyncio.sleep(0.05)
    await client.get(base + "/fast")
    await read
    assert client.created == created_before
    assert len(server.peers) == 2  # both requests went over the reserve's two connections


async def test_without_the_reserve_the_same_order_opens_a_connection(venue, client) -> None:
    server, base = venue  # the control: proves the test above can fail
    await client.get(base + "/fast")
    read = asyncio.create_task(client.get(base + "/slow"))
    await asyncio.sleep(0.05)
    await client.get(base + "/fast")
    await read
    assert client.created == 2


async def test_connections_near_their_keep_alive_are_renewed_not_left_for_an_order(venue, client) -> None:
    _, base = venue
    await client.get(base + "/fast")
    reserve = ConnectionReserve(client, venue="v", spare=2)
    await reserve.tick()
    connector = client.session.connector
    old = {id(proto) for conns in connector._conns.values() for proto, _ in conns}
    later = asyncio.get_running_loop().time() + connector._keepalive_timeout - RENEW_BEFORE_S + 0.5
    assert await reserve.tick(now_s=later) == 2
    assert reserve.renewed == 2 and client.idle() == 2
    new = {id(proto) for conns in connector._conns.values() for proto, _ in conns}
    assert not old & new


async def test_connections_the_venue_closed_are_dropped_and_replaced(client) -> None:
    server = Venue(keepalive_s=0.1)  # the venue closes idle connections after 0.1 s
    base = await server.start()
    try:
        await client.get(base + "/fast")
        reserve = ConnectionReserve(client, venue="v", spare=2)
        await reserve.tick()
        connector = client.session.connector
        for _ in range(500):  # the venue closes both within its 0.1 s keep-alive (bounded at 5 s)
            if not any(proto.is_connected() for conns in connector._conns.values() for proto, _ in conns):
                break
            await asyncio.sleep(0.01)
        await reserve.tick()
        assert reserve.dropped == 2 and reserve.opened == 3
        assert all(proto.is_connected() for conns in connector._conns.values() for proto, _ in conns)
    finally:
        await server.stop()


async def test_an_unreachable_host_is_retried_later_and_never_raises(client) -> None:
    server = Venue()
    base = await server.start()
    await client.get(base + "/fast")
    await server.stop()
    await asyncio.sleep(0.05)
    reserve = ConnectionReserve(client, venue="v", spare=2)
    assert await reserve.tick() == 0  # refused: logged, paused
    assert reserve.opened == 0 and reserve.disabled is None
    key = next(iter(reserve._hosts))
    assert reserve._retry_at[key] > asyncio.get_running_loop().time()
    assert await reserve.tick() == 0  # within the pause: not even tried
    assert reserve._failures[key] == 1


async def test_a_connector_without_the_members_turns_the_reserve_off(caplog) -> None:
    class OtherConnector:
        closed = False
        _conns: dict = {}

    exchange = SimpleNamespace(session=SimpleNamespace(connector=OtherConnector()))
    reserve = ConnectionReserve(exchange, venue="v", spare=2)
    await asyncio.wait_for(reserve.run(), 1)  # returns: nothing left to do
    assert reserve.disabled is not None and "_create_connection" in reserve.disabled


async def test_reserves_for_takes_each_ccxt_instance_once() -> None:
    shared, other = Client(), Client()
    try:
        venues = [SimpleNamespace(name="hyperliquid", executor=SimpleNamespace(exchange=shared)),
                  SimpleNamespace(name="binanceusdm", executor=SimpleNamespace(exchange=other)),
                  SimpleNamespace(name="okx:spot", executor=SimpleNamespace(exchange=other)),
                  SimpleNamespace(name="bybit", executor=SimpleNamespace())]  # pybit: no ccxt instance
        reserves = reserves_for(venues, spare=3)
        assert [(r.venue, r.spare) for r in reserves] == [("hyperliquid", 3), ("binanceusdm", 3)]
        assert reserves_for(venues, spare=0) == []
        with pytest.raises(ValueError, match="spare"):
            ConnectionReserve(shared, venue="v", spare=0)
    finally:
        await shared.session.close()
        await other.session.close()



async def test_a_connection_that_never_completes_is_given_up_and_retried_later(venue, monkeypatch) -> None:
    import adapters.ccxt_common.connection_reserve as reserve_module

    class HangingConnector(aiohttp.TCPConnector):
        hang = False

        async def _create_connection(self, req, traces, timeout):  # noqa: ANN001 - aiohttp's signature
            if self.hang:
                await asyncio.sleep(3600)  # a handshake that never ends
            return await super()._create_connection(req, traces, timeout)

    _, base = venue
    monkeypatch.setattr(reserve_module, "CONNECT_TIMEOUT_S", 0.05)
    connector = HangingConnector()
    exchange = SimpleNamespace(session=aiohttp.ClientSession(connector=connector))
    try:
        async with exchange.session.get(base + "/fast") as response:
            await response.read()
        connector.hang = True
        reserve = ConnectionReserve(exchange, venue="v", spare=2)
        assert await asyncio.wait_for(reserve.tick(), 5) == 0  # given up after CONNECT_TIMEOUT_S
        key = next(iter(reserve._hosts))
        assert reserve._failures[key] == 1 and reserve.opened == 0
        connector.hang = False
        reserve._retry_at[key] = 0.0  # the pause is over
        assert await reserve.tick() == 1 and reserve.idle_counts() == {f"{key.host}:{key.port}": 2}
        assert key not in reserve._failures
    finally:
        await exchange.session.close()
