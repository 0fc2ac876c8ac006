"""The OKX v5 dialect of the venue emulator, spoken to by the UNMODIFIED ccxt / ccxt.pro okx client:
contract sizes, OK-ACCESS signing (key, passphrase, signature, 30 s timestamp window), OKX's own
error codes, the ``books`` channel (snapshot + updates chained by seqId, OKX's CRC32 checksum) and
the faults the other dialects have."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

ccxt = pytest.importorskip("ccxt")
from ccxt.base import errors as cx

from paper.emulator import ApiKey, start_emulator
from paper.emulator.clients import ccxt_client
from paper.emulator.okx import CONTRACT_VALUES, book_checksum

D = Decimal
BTC = "BTC/USDT:USDT"


def test_book_checksum_matches_the_okx_documentation_examples() -> None:
    # OKX v5 docs, "Checksum": both examples and their published signed CRC32 values
    assert book_checksum([["3366.1", "7"], ["3366", "6"]], [["3366.8", "9"], ["3368", "8"]]) == -1881014294
    assert book_checksum([["3366.1", "7"]], [["3366.8", "9"], ["3368", "8"], ["3372", "8"]]) == 831078360


@pytest.fixture
def emu(tmp_path):
    with start_emulator(["okx"], state_path=tmp_path / "v.sqlite", seed=5, manual_clock=True) as handle:
        yield handle


async def _run(coro_factory, emu, **config):
    ex = ccxt_client(emu, "okx", pro=True, **config)
    try:
        return await coro_factory(ex)
    finally:
        await ex.close()


def test_markets_are_linear_swaps_in_contracts(emu) -> None:
    async def go(ex):
        await ex.load_markets()
        return ex.market(BTC)

    market = asyncio.run(_run(go, emu))
    inst = emu.core.instrument("okx", "BTC")
    assert market["id"] == "BTC-USDT-SWAP" and market["swap"] and market["linear"]
    assert D(str(market["contractSize"])) == CONTRACT_VALUES["BTC"] == D("0.01")
    assert D(str(market["precision"]["amount"])) * CONTRACT_VALUES["BTC"] == inst.lot_size_base
    assert D(str(market["limits"]["amount"]["min"])) * CONTRACT_VALUES["BTC"] == inst.min_size_base


def test_an_order_in_contracts_moves_the_venue_position_in_base(emu) -> None:
    async def go(ex):
        book = await ex.fetch_order_book(BTC, 5)
        price = float((D(str(book["asks"][0][0])) * D("1.001")).quantize(D("0.1")))
        await ex.create_order(BTC, "limit", "buy", 3, price,
                              {"clientOrderId": "okxc1", "timeInForce": "IOC", "tdMode": "cross"})
        order = await ex.fetch_order(None, BTC, {"clientOrderId": "okxc1"})
        trades = await ex.fetch_my_trades(BTC)
        return order, trades

    order, trades = asyncio.run(_run(go, emu))
    assert order["status"] == "closed" and order["filled"] == 3 and order["clientOrderId"] == "okxc1"
    assert [t["info"]["clOrdId"] for t in trades] == ["okxc1"] and trades[0]["fee"]["cost"] > 0  # fee "-x" = paid
    assert emu.call(lambda: emu.core.executor.position_state("okx", "BTC")).size_base == D("0.03")


@pytest.mark.parametrize(("override", "code", "error"), [
    ({"apiKey": "not-a-key"}, "50111", cx.AuthenticationError),
    ({"password": "wrong-passphrase"}, "50105", cx.AuthenticationError),
    ({"secret": "wrong-secret"}, "50113", cx.AuthenticationError),
])
def test_wrong_credentials_get_okx_codes(emu, override, code, error) -> None:
    async def go(ex):
        await ex.fetch_balance()

    with pytest.raises(error, match=code):
        asyncio.run(_run(go, emu, **override))


def test_requests_signed_beyond_30_s_of_the_venue_clock_are_refused(emu) -> None:
    emu.faults.arm("clock_skew", venue="okx", offset_ms=45_000)

    async def go(ex):
        await ex.fetch_time()  # public: answered
        await ex.fetch_balance()

    with pytest.raises(cx.InvalidNonce, match="50102"):
        asyncio.run(_run(go, emu))


def test_duplicate_client_order_id_answers_51016(emu) -> None:
    async def go(ex):
        book = await ex.fetch_order_book(BTC, 5)
        price = float((D(str(book["asks"][0][0])) * D("1.001")).quantize(D("0.1")))
        params = {"clientOrderId": "dup1", "timeInForce": "IOC", "tdMode": "cross"}
        await ex.create_order(BTC, "limit", "buy", 1, price, params)
        await ex.create_order(BTC, "limit", "buy", 1, price, params)

    with pytest.raises(cx.InvalidOrder, match="51016"):
        asyncio.run(_run(go, emu))
    assert emu.call(lambda: emu.core.executor.position_state("okx", "BTC")).size_base == D("0.01")


def test_streamed_book_follows_the_rest_book_through_updates(emu) -> None:
    """Snapshot, then updates carrying only changed levels: after several venue steps the book ccxt.pro
    maintains equals the REST book, and every message's checksum matches the levels it implies."""
    seen: list[dict] = []

    async def go(ex):
        original = ex.handle_order_book

        def spy(client, message):
            seen.append(message)
            return original(client, message)

        ex.handle_order_book = spy
        first = await ex.watch_order_book(BTC, 20)
        nonce = first["nonce"]
        for _ in range(3):
            emu.advance_ms(1_000)
            book = await ex.watch_order_book(BTC, 20)
            assert book["nonce"] > nonce
            nonce = book["nonce"]
        rest = await ex.fetch_order_book(BTC, 20)
        return [list(lv[:2]) for lv in book["bids"][:20]], [list(lv[:2]) for lv in book["asks"][:20]], rest

    bids, asks, rest = asyncio.run(_run(go, emu))
    assert bids == [list(lv[:2]) for lv in rest["bids"]] and asks == [list(lv[:2]) for lv in rest["asks"]]
    assert seen[0]["action"] == "snapshot" and {m["action"] for m in seen[1:]} == {"update"}
    levels: dict[str, dict[str, str]] = {"bids": {}, "asks": {}}
    for message in seen:  # rebuild from the wire strings and check OKX's checksum on each message
        data = message["data"][0]
        for side in ("bids", "asks"):
            for price, size, *_ in data[side]:
                if size == "0":
                    levels[side].pop(price, None)
                else:
                    levels[side][price] = size
        ordered_bids = sorted(levels["bids"].items(), key=lambda kv: -D(kv[0]))
        ordered_asks = sorted(levels["asks"].items(), key=lambda kv: D(kv[0]))
        assert book_checksum([list(kv) for kv in ordered_bids], [list(kv) for kv in ordered_asks]) == data["checksum"]


def test_sequence_gap_is_noticed_and_the_book_resubscribes(emu) -> None:
    async def go(ex):
        await ex.watch_order_book(BTC, 20)
        emu.faults.arm("ws_sequence_gap", venue="okx")
        emu.advance_ms(1_000)  # this update is lost
        emu.advance_ms(1_000)  # its successor's prevSeqId does not match
        with pytest.raises(cx.InvalidNonce):
            for _ in range(5):
                await asyncio.wait_for(ex.watch_order_book(BTC, 20), 10)
        book = await asyncio.wait_for(ex.watch_order_book(BTC, 20), 10)  # unsubscribe + subscribe: a new snapshot
        return book, await ex.fetch_order_book(BTC, 20)

    book, rest = asyncio.run(_run(go, emu))
    assert [lv[:2] for lv in book["bids"][:20]] == [lv[:2] for lv in rest["bids"]]


def test_private_stream_login_and_orders_channel(emu) -> None:
    async def go(ex):
        watcher = asyncio.ensure_future(ex.watch_orders())
        for _ in range(200):  # until the subscription is in place
            if any(c.kind == "private" and c.topics for c in emu._running.dialects["okx"].hub):
                break
            await asyncio.sleep(0.02)
        book = await ex.fetch_order_book(BTC, 5)
        price = float((D(str(book["asks"][0][0])) * D("1.001")).quantize(D("0.1")))
        await ex.create_order(BTC, "limit", "buy", 1, price,
                              {"clientOrderId": "wso1", "timeInForce": "IOC", "tdMode": "cross"})
        return await asyncio.wait_for(watcher, 10)

    orders = asyncio.run(_run(go, emu))
    assert [(o["clientOrderId"], o["status"], o["filled"]) for o in orders] == [("wso1", "closed", 1.0)]


def test_wrong_passphrase_cannot_log_in_to_the_private_stream(emu) -> None:
    async def go(ex):
        await asyncio.wait_for(ex.watch_orders(), 10)

    with pytest.raises(cx.AuthenticationError):
        asyncio.run(_run(go, emu, password="wrong"))


def test_position_mode_switch_with_an_open_position_answers_59000(emu) -> None:
    async def go(ex):
        book = await ex.fetch_order_book(BTC, 5)
        price = float((D(str(book["asks"][0][0])) * D("1.001")).quantize(D("0.1")))
        await ex.set_position_mode(False)  # flat: accepted
        await ex.create_order(BTC, "limit", "buy", 1, price, {"clientOrderId": "pm1", "timeInForce": "IOC",
                                                              "tdMode": "cross"})
        await ex.set_position_mode(False)

    with pytest.raises(cx.ExchangeError, match="59000"):
        asyncio.run(_run(go, emu))


def test_credentials_default_to_the_documented_test_keys() -> None:
    from paper.emulator import default_credentials

    assert default_credentials("okx") == ApiKey("emu-okx-key", "emu-okx-secret", passphrase="emu-okx-passphrase")


def test_documented_rate_limits_per_endpoint_and_for_orders() -> None:
    from paper.emulator.rate_limits import VenueRateLimits

    now = [0.0]
    limits = VenueRateLimits("okx", clock=lambda: now[0])
    assert all(limits.admit("/api/v5/market/books", "public") for _ in range(20))
    assert not limits.admit("/api/v5/market/books", "public")  # 21st within 2 s on that endpoint
    assert limits.admit("/api/v5/public/funding-rate", "public")  # another endpoint has its own budget
    assert all(limits.admit("/api/v5/trade/batch-orders", "order") for _ in range(60))
    assert not limits.admit("/api/v5/trade/batch-orders", "order")
    now[0] = 2.5
    assert limits.admit("/api/v5/market/books", "public") and limits.admit("/api/v5/trade/batch-orders", "order")


def _adapter_env(emu) -> dict[str, str]:
    cred = emu.credentials["okx"]
    return {"OKX_API_KEY": cred.key, "OKX_API_SECRET": cred.secret, "OKX_API_PASSPHRASE": cred.passphrase}


@pytest.mark.parametrize("execute", [True, False])
def test_timeout_before_answering_is_resolved_by_lookup(tmp_path, execute: bool) -> None:
    """The venue holds the request, then drops it: executed late (found by clOrdId, not resent) or never
    (unknown inside the grace, the position untouched)."""
    from adapters.errors import TemporaryVenueError
    from adapters.registry import LiveVenueConfig, build_live_venue
    from bot.core.domain import OrderRequest, OrderSide, OrderStatus

    async def go(emu):
        venue = await build_live_venue("okx", LiveVenueConfig(base_url=emu.base_urls["okx"]), _adapter_env(emu),
                                       symbols=["BTC"], max_slippage_bps=D(50))
        try:
            await venue.market.resync_book(venue.market._markets["BTC"])
            emu.faults.arm("timeout", venue="okx", scope="order", delay_s=0.5, execute=execute)
            request = OrderRequest("slowone", "okx", "BTC", OrderSide.BUY, D("0.01"))
            if execute:
                report = await venue.executor.place_order(request)
                assert report.status is OrderStatus.FILLED and report.filled_base == D("0.01")
            else:
                with pytest.raises(TemporaryVenueError):
                    await venue.executor.place_order(request)
            return await venue.executor.positions("okx")
        finally:
            await venue.close()

    with start_emulator(["okx"], state_path=tmp_path / "v.sqlite") as emu:
        positions = asyncio.run(go(emu))
    assert [p.size_base for p in positions] == ([D("0.01")] if execute else [])


def test_book_stream_survives_a_disconnect(tmp_path) -> None:
    """The venue closes every stream: the feed resyncs by REST and the ccxt.pro ``books`` stream comes
    back (streamed books keep arriving after the disconnect)."""
    import anyio

    from adapters.registry import LiveVenueConfig, build_live_venue

    async def go(emu):
        venue = await build_live_venue("okx", LiveVenueConfig(base_url=emu.base_urls["okx"]), _adapter_env(emu),
                                       symbols=["BTC"], max_slippage_bps=D(50))
        dialect = emu._running.dialects["okx"]
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(venue.market.run)
                with anyio.fail_after(30):
                    while not any(c.kind == "public" and c.topics for c in dialect.hub):
                        await anyio.sleep(0.05)
                before = list(dialect.hub)  # kept alive: compared by identity
                emu.faults.arm("ws_disconnect", venue="okx")
                with anyio.fail_after(30):
                    while not any(c.kind == "public" and c.topics and all(c is not old for old in before)
                                  for c in list(dialect.hub)):  # a new socket, subscribed again
                        await anyio.sleep(0.05)
                    seen = venue.market.book("BTC")
                    while venue.market.book("BTC") is seen:  # and books flow again
                        await anyio.sleep(0.05)
                resyncs = venue.market.resyncs
                tg.cancel_scope.cancel()
            return resyncs
        finally:
            await venue.close()

    with start_emulator(["okx"], state_path=tmp_path / "v.sqlite") as emu:
        assert asyncio.run(go(emu)) >= 1


def test_an_order_past_its_exptime_is_not_processed(emu) -> None:
    from adapters.okx.dialect import install_order_deadline

    async def go(ex):
        install_order_deadline(ex, deadline_ms=-1_000)  # already past when it arrives
        book = await ex.fetch_order_book(BTC, 5)
        price = float((D(str(book["asks"][0][0])) * D("1.001")).quantize(D("0.1")))
        await ex.create_order(BTC, "limit", "buy", 1, price, {"clientOrderId": "late1", "timeInForce": "IOC",
                                                              "tdMode": "cross"})

    with pytest.raises(cx.RequestTimeout, match="50004"):
        asyncio.run(_run(go, emu))
    assert emu.call(lambda: emu.core.executor.stored_order("okx", "late1")) is None


def test_a_send_held_past_its_deadline_never_executes_and_is_known_so_after_7_s(tmp_path) -> None:
    """The adapter's orders carry ``expTime`` = send + 5 s: a request the venue only processes 6 s later
    is refused there, and the executor answers "can never execute" once 7 s (deadline + skew
    allowance) have passed on its clock, not a minute."""
    from adapters.errors import OrderNotFoundYet, TemporaryVenueError
    from adapters.registry import LiveVenueConfig, build_live_venue
    from bot.core.domain import OrderRequest, OrderSide

    now = {"ms": 0}

    async def go(emu):
        import time as _time

        now["ms"] = _time.time_ns() // 1_000_000
        venue = await build_live_venue("okx", LiveVenueConfig(base_url=emu.base_urls["okx"]), _adapter_env(emu),
                                       symbols=["BTC"], max_slippage_bps=D(50), now_ms=lambda: now["ms"])
        try:
            await venue.market.resync_book(venue.market._markets["BTC"])
            now["ms"] += 60_000  # the executor has run a while: no pre-start send is in flight
            emu.faults.arm("timeout", venue="okx", scope="order", delay_s=6, execute=True)
            with pytest.raises(TemporaryVenueError):
                await venue.executor.place_order(OrderRequest("heldsix", "okx", "BTC", OrderSide.BUY, D("0.01")))
            with pytest.raises(OrderNotFoundYet):
                await venue.executor.get_order("okx", "heldsix")
            now["ms"] += 7_001
            assert await venue.executor.get_order("okx", "heldsix") is None
            return await venue.executor.positions("okx")
        finally:
            await venue.close()

    with start_emulator(["okx"], state_path=tmp_path / "v.sqlite") as emu:
        assert asyncio.run(go(emu)) == []
        assert emu._running.dialects["okx"].expired_requests == 1


def test_funding_of_every_symbol_comes_from_one_account_wide_bills_call(tmp_path) -> None:
    """OKX funding bills are account-wide: one ``bills-archive`` call per read, each payment attributed to
    its own symbol with the venue's amount and sign (+ = received)."""
    from adapters.registry import LiveVenueConfig, build_live_venue
    from bot.core.domain import OrderRequest, OrderSide

    async def go(emu):
        venue = await build_live_venue("okx", LiveVenueConfig(base_url=emu.base_urls["okx"]), _adapter_env(emu),
                                       symbols=["BTC", "ETH"], max_slippage_bps=D(50))
        try:
            for market in venue.market._markets.values():
                await venue.market.resync_book(market)
            await venue.executor.place_order(OrderRequest("fundbtc", "okx", "BTC", OrderSide.BUY, D("0.01")))
            await venue.executor.place_order(OrderRequest("fundeth", "okx", "ETH", OrderSide.SELL, D("0.1")))
            emu.advance_ms(8 * 3_600_000 + 1_000)
            calls: list[object] = []
            original = venue.executor._ex.fetch_funding_history

            async def counted(*args, **kwargs):
                calls.append(args[0] if args else None)
                return await original(*args, **kwargs)

            venue.executor._ex.fetch_funding_history = counted
            payments = await venue.executor.funding_payments_since("okx", 0)
            return payments, calls
        finally:
            await venue.close()

    with start_emulator(["okx"], state_path=tmp_path / "v.sqlite", manual_clock=True) as emu:
        payments, calls = asyncio.run(go(emu))
        theirs = emu.call(lambda: emu.core.executor.venue_funding("okx"))
    assert calls == [None]
    assert {p.symbol for p in theirs} == {"BTC", "ETH"}
    assert sorted((p.symbol, p.ts_ms, p.amount_usd) for p in payments) == \
        sorted((p.symbol, p.ts_ms, p.amount_usd) for p in theirs)
