"""The emulator's spot venue: the ledger's rules (fees in the received coin, no shorting, order types)
and the Bybit ``category=spot`` dialect through unmodified pybit (state across a restart, market buys
in quote units, the ``/v5/public/spot`` stream)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from bot.core.domain import (
    BookLevel,
    FeeSchedule,
    Instrument,
    InstrumentKind,
    OrderBook,
    OrderSide,
)
from paper.emulator.spot import (
    REFUSE_BALANCE,
    REFUSE_DUPLICATE,
    REFUSE_POST_ONLY,
    SpotLedger,
    SpotRefusal,
)

emulator = pytest.importorskip("paper.emulator", reason="the venue emulator is not in this checkout")

D = Decimal
LOT = D("0.001")


class _Market:
    def __init__(self) -> None:
        self.mid = D(100)
        self.quote = D(10_000)

    def book(self, symbol: str) -> OrderBook:
        return OrderBook("x:spot", symbol, bids=(BookLevel(self.mid - 1, D(5)), BookLevel(self.mid - 2, D(5))),
                         asks=(BookLevel(self.mid + 1, D(5)), BookLevel(self.mid + 2, D(5))), ts_ms=1)

    def instrument(self, symbol: str) -> Instrument:
        return Instrument("x:spot", symbol, f"{symbol}USDT", D("0.01"), LOT, LOT, D(1), D(5), InstrumentKind.SPOT)


def _ledger(path=None, coins=None) -> tuple[SpotLedger, _Market]:
    m = _Market()
    ledger = SpotLedger("x", quote_coin="USDT", fees=FeeSchedule(D(10), D(10)), book=m.book, instrument=m.instrument,
                        now_ms=lambda: 1_700_000_000_000, quote_balance=lambda: m.quote, state_path=path,
                        starting_coins=coins)
    return ledger, m


def test_buy_fee_in_base_sell_fee_in_quote() -> None:
    ledger, _ = _ledger()
    buy = ledger.place(client_order_id="b", symbol="AAA", side=OrderSide.BUY, order_type="limit",
                       time_in_force="IOC", qty=D(7), price=D(105))
    assert buy.status == "filled" and buy.filled_base == 7 and buy.fee_base == D("0.007") and buy.fee_quote == 0
    assert ledger.balance("AAA") == D("6.993")
    assert ledger.balance("USDT") == D(10_000) - (5 * D(101) + 2 * D(102))
    sell = ledger.place(client_order_id="s", symbol="AAA", side=OrderSide.SELL, order_type="limit",
                        time_in_force="IOC", qty=D("6.993"), price=D(90))
    assert sell.fee_base == 0 and sell.fee_quote > 0 and ledger.balance("AAA") == 0
    assert [f.fee_coin for f in ledger.fills] == ["AAA", "AAA", "USDT", "USDT"]


def test_no_shorting_no_overdraft_and_no_duplicate() -> None:
    ledger, _ = _ledger(coins={"AAA": D(1)})
    with pytest.raises(SpotRefusal) as exc:
        ledger.place(client_order_id="s", symbol="AAA", side=OrderSide.SELL, order_type="market",
                     time_in_force="IOC", qty=D(2), price=None)
    assert exc.value.code == REFUSE_BALANCE
    with pytest.raises(SpotRefusal) as exc:
        ledger.place(client_order_id="b", symbol="AAA", side=OrderSide.BUY, order_type="limit",
                     time_in_force="IOC", qty=D(200), price=D(101))  # 20,200 USDT > 10,000
    assert exc.value.code == REFUSE_BALANCE
    ledger.place(client_order_id="ok", symbol="AAA", side=OrderSide.SELL, order_type="market",
                 time_in_force="IOC", qty=D(1), price=None)
    with pytest.raises(SpotRefusal) as exc:
        ledger.place(client_order_id="ok", symbol="AAA", side=OrderSide.SELL, order_type="market",
                     time_in_force="IOC", qty=D(1), price=None)
    assert exc.value.code == REFUSE_DUPLICATE
    assert ledger.balance("AAA") == 0


def test_ioc_partial_fok_post_only_and_resting_maker_fill() -> None:
    ledger, market = _ledger()
    ioc = ledger.place(client_order_id="i", symbol="AAA", side=OrderSide.BUY, order_type="limit",
                       time_in_force="IOC", qty=D(8), price=D(101))
    assert ioc.status == "partially_filled_canceled" and ioc.filled_base == 5
    fok = ledger.place(client_order_id="f", symbol="AAA", side=OrderSide.BUY, order_type="limit",
                       time_in_force="FOK", qty=D(8), price=D(101))
    assert fok.status == "canceled" and fok.filled_base == 0
    with pytest.raises(SpotRefusal) as exc:
        ledger.place(client_order_id="p", symbol="AAA", side=OrderSide.BUY, order_type="limit",
                     time_in_force="PostOnly", qty=D(1), price=D(101))
    assert exc.value.code == REFUSE_POST_ONLY
    rest = ledger.place(client_order_id="r", symbol="AAA", side=OrderSide.BUY, order_type="limit",
                        time_in_force="GTC", qty=D(1), price=D(95))
    assert rest.status == "new" and ledger.match_resting() == []
    market.mid = D(93)  # asks at 94 and 95: 94 trades through the resting buy at 95
    assert ledger.match_resting() == ["r"]
    filled = ledger.orders["r"]
    assert filled.status == "filled" and filled.filled_quote == D(95) and ledger.fills[-1].liquidity.value == "maker"
    assert ledger.fills[-1].fee == D("0.001")  # maker fee, in the base coin


def test_market_buy_in_quote_units() -> None:
    ledger, _ = _ledger()
    order = ledger.place(client_order_id="q", symbol="AAA", side=OrderSide.BUY, order_type="market",
                         time_in_force="IOC", qty=D(303), price=None, qty_in_quote=True)
    assert order.status == "filled" and order.filled_base == 3 and order.filled_quote == 303


def test_ledger_survives_a_restart(tmp_path) -> None:
    path = tmp_path / "state.sqlite"
    ledger, _ = _ledger(path, coins={"AAA": D(2)})
    ledger.place(client_order_id="b", symbol="AAA", side=OrderSide.BUY, order_type="limit", time_in_force="IOC",
                 qty=D(1), price=D(101))
    ledger.place(client_order_id="r", symbol="AAA", side=OrderSide.SELL, order_type="limit", time_in_force="GTC",
                 qty=D(1), price=D(150))
    ledger.close()
    again, _ = _ledger(path, coins={"AAA": D(50)})  # starting coins apply to a fresh file only
    assert again.balance("AAA") == D("2.999") and again.locked("AAA") == D(1)
    assert set(again.orders) == {"b", "r"} and len(again.fills) == 1
    nxt = again.place(client_order_id="c", symbol="AAA", side=OrderSide.BUY, order_type="limit",
                      time_in_force="IOC", qty=D(1), price=D(101))
    assert nxt.venue_order_id not in {o.venue_order_id for k, o in again.orders.items() if k != "c"}
    again.close()


def _pybit(emu):
    from pybit.unified_trading import HTTP

    cred = emu.credentials["bybit"]
    session = HTTP(api_key=cred.key, api_secret=cred.secret, max_retries=1, retry_codes={-1}, force_retry=False)
    emu.point_pybit(session)
    return session


def test_dialect_wallet_and_orders_survive_an_emulator_restart(tmp_path) -> None:
    state = tmp_path / "venues.sqlite"
    with emulator.start_emulator(["bybit"], state_path=state, seed=2) as emu:
        s = _pybit(emu)
        ask = D(s.get_orderbook(category="spot", symbol="ETHUSDT", limit=1)["result"]["a"][0][0])
        s.place_order(category="spot", symbol="ETHUSDT", side="Buy", orderType="Market", qty="1000",
                      orderLinkId="quote-buy")  # market buy: qty in USDT
        (row,) = s.get_order_history(category="spot", orderLinkId="quote-buy")["result"]["list"]
        assert row["orderStatus"] == "Filled" and row["marketUnit"] == "quoteCoin"
        got = D(row["cumExecQty"])
        assert 0 < got * ask <= D(1000)
        before = {c["coin"]: c["walletBalance"] for c in
                  s.get_wallet_balance(accountType="UNIFIED")["result"]["list"][0]["coin"]}
        assert D(before["ETH"]) == got - D(row["cumExecFee"])  # fee in ETH
    with emulator.start_emulator(["bybit"], state_path=state, seed=2) as emu:
        s = _pybit(emu)
        after = {c["coin"]: c["walletBalance"] for c in
                 s.get_wallet_balance(accountType="UNIFIED")["result"]["list"][0]["coin"]}
        assert after == before
        (row,) = s.get_order_history(category="spot", orderLinkId="quote-buy")["result"]["list"]
        assert row["orderStatus"] == "Filled"
        rows = s.get_executions(category="spot")["result"]["list"]
        assert rows and all(r["feeCurrency"] == "ETH" for r in rows)


@pytest.mark.anyio
async def test_public_spot_stream_serves_spot_books(tmp_path) -> None:
    import websockets

    with emulator.start_emulator(["bybit"], state_path=tmp_path / "v.sqlite", seed=4) as emu:
        perp = emu.call(emu.core.book, "bybit", "BTC")
        async with websockets.connect(emu.ws_urls["bybit"] + "/v5/public/spot") as ws:
            await ws.send(json.dumps({"op": "subscribe", "args": ["orderbook.50.BTCUSDT", "tickers.BTCUSDT"]}))
            seen: dict[str, dict] = {}
            while len(seen) < 2:
                msg = json.loads(await ws.recv())
                if "topic" in msg:
                    seen.setdefault(msg["topic"], msg)
        book = seen["orderbook.50.BTCUSDT"]["data"]
        assert D(book["a"][0][0]) <= perp.best_ask and D(book["b"][0][0]) < perp.best_bid
        ticker = seen["tickers.BTCUSDT"]["data"]
        assert "fundingRate" not in ticker and "openInterestValue" not in ticker  # a spot ticker
