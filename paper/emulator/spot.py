"""The emulator's spot venue: per-coin wallets, spot orders and fills with the fee in the received coin.

A spot market is not a position: buying moves quote coin (USDT) out of the wallet and base coin in,
selling the reverse. Fees are taken from what the account RECEIVES, as on Bybit spot: a buy's fee is
charged in the BASE coin (buy 1 BTC, receive 1 - fee BTC), a sell's in the quote coin. There is no
reduce-only and no shorting: a sell needs the base coin in the wallet (else "insufficient balance"),
a buy needs the quote coin for its worst price.

``SpotLedger`` keeps one exchange's spot account: orders (IOC/FOK/GTC limits, market orders in base
units or, for buys, in quote units), fills, and the wallet as balances per coin ON TOP of the perp
account's USDT (a unified account: the quote balance shown to clients is the perp wallet plus the
spot ledger's quote delta). Every event is computed first, written to the state file in one
transaction (own tables beside the venue store), and only then applied in memory, so the venue
state survives an emulator restart exactly like the perp side.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

from bot.core.domain import (
    ZERO,
    BookLevel,
    FeeSchedule,
    Instrument,
    Liquidity,
    OrderBook,
    OrderSide,
)
from paper.matching import walk_book

ORDER_TYPES = ("limit", "market")
TIME_IN_FORCE = ("IOC", "FOK", "GTC", "PostOnly")


class SpotRefusal(Exception):
    """A spot request the venue refuses: ``code`` is one of the ``REFUSE_*`` names below."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


REFUSE_BALANCE = "insufficient_balance"
REFUSE_DUPLICATE = "duplicate"
REFUSE_PARAMS = "params"
REFUSE_MIN = "min_size"
REFUSE_POST_ONLY = "post_only"


@dataclass(frozen=True, slots=True)
class SpotOrder:
    """One spot order as the venue keeps it. ``requested_quote`` is set for a market buy in quote units."""

    client_order_id: str
    venue_order_id: str
    symbol: str
    side: OrderSide
    order_type: str  # "limit" / "market"
    time_in_force: str  # IOC / FOK / GTC / PostOnly
    limit_price: Decimal | None
    requested_base: Decimal  # 0 for a market buy in quote units
    requested_quote: Decimal | None
    filled_base: Decimal
    filled_quote: Decimal  # sum of price x size
    fee_base: Decimal  # buys: base coin kept as fee
    fee_quote: Decimal  # sells: quote coin kept as fee
    status: str  # "new", "partially_filled", "filled", "canceled", "partially_filled_canceled", "rejected"
    created_ts_ms: int
    updated_ts_ms: int
    seq: int

    @property
    def is_terminal(self) -> bool:
        return self.status in ("filled", "canceled", "partially_filled_canceled", "rejected")

    @property
    def remaining_base(self) -> Decimal:
        return max(ZERO, self.requested_base - self.filled_base)


@dataclass(frozen=True, slots=True)
class SpotFill:
    """One spot execution; ``fee`` is in ``fee_coin`` (the coin the account received)."""

    trade_id: str
    client_order_id: str
    venue_order_id: str
    symbol: str
    side: OrderSide
    price: Decimal
    size_base: Decimal
    fee: Decimal
    fee_coin: str
    fee_rate: Decimal
    liquidity: Liquidity
    ts_ms: int
    seq: int


def _dump(obj: object) -> str:
    def conv(value: object) -> object:
        if isinstance(value, Decimal):
            return {"__d": str(value)}
        if isinstance(value, (OrderSide, Liquidity)):
            return value.value
        return value
    return json.dumps({k: conv(v) for k, v in asdict(obj).items()})


def _load_fields(text: str) -> dict:
    raw = json.loads(text)
    return {k: Decimal(v["__d"]) if isinstance(v, dict) and "__d" in v else v for k, v in raw.items()}


def _order_from(text: str) -> SpotOrder:
    d = _load_fields(text)
    d["side"] = OrderSide(d["side"])
    return SpotOrder(**d)


def _fill_from(text: str) -> SpotFill:
    d = _load_fields(text)
    d["side"] = OrderSide(d["side"])
    d["liquidity"] = Liquidity(d["liquidity"])
    return SpotFill(**d)


class _SpotTables:
    """The spot ledger's rows in the emulator's state file (or nowhere, in memory)."""

    def __init__(self, path: str | Path | None) -> None:
        self._conn = None
        if path is not None:
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
            self._conn.execute("CREATE TABLE IF NOT EXISTS emulator_spot_orders (venue TEXT NOT NULL, "
                               "client_order_id TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (venue, client_order_id))")
            self._conn.execute("CREATE TABLE IF NOT EXISTS emulator_spot_fills (venue TEXT NOT NULL, "
                               "trade_id TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (venue, trade_id))")
            self._conn.execute("CREATE TABLE IF NOT EXISTS emulator_spot_wallet (venue TEXT NOT NULL, "
                               "coin TEXT NOT NULL, amount TEXT NOT NULL, PRIMARY KEY (venue, coin))")

    def load(self, venue: str) -> tuple[list[SpotOrder], list[SpotFill], dict[str, Decimal]] | None:
        if self._conn is None:
            return None
        orders = [_order_from(b) for (b,) in self._conn.execute(
            "SELECT body FROM emulator_spot_orders WHERE venue = ?", (venue,))]
        fills = [_fill_from(b) for (b,) in self._conn.execute(
            "SELECT body FROM emulator_spot_fills WHERE venue = ?", (venue,))]
        wallet = {c: Decimal(a) for c, a in self._conn.execute(
            "SELECT coin, amount FROM emulator_spot_wallet WHERE venue = ?", (venue,))}
        if not orders and not wallet:
            return None
        return sorted(orders, key=lambda o: o.seq), sorted(fills, key=lambda f: f.seq), wallet

    def write(self, venue: str, orders: list[SpotOrder], fills: list[SpotFill], wallet: dict[str, Decimal]) -> None:
        if self._conn is None:
            return
        cur = self._conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            cur.executemany("INSERT OR REPLACE INTO emulator_spot_orders VALUES (?, ?, ?)",
                            [(venue, o.client_order_id, _dump(o)) for o in orders])
            cur.executemany("INSERT OR IGNORE INTO emulator_spot_fills VALUES (?, ?, ?)",
                            [(venue, f.trade_id, _dump(f)) for f in fills])
            cur.executemany("INSERT OR REPLACE INTO emulator_spot_wallet VALUES (?, ?, ?)",
                            [(venue, c, str(a)) for c, a in wallet.items()])
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


class SpotLedger:
    """One exchange's spot account on the emulator (see the module docstring).

    ``book(symbol)`` / ``instrument(symbol)`` read the spot market; ``now_ms`` is the venue clock;
    ``quote_balance()`` is the perp wallet's quote coin (the spot ledger's quote delta is added to it).
    ``starting_coins``: base coins the account holds before anything trades (coins the bot does not
    own), applied once to a fresh state file.
    """

    def __init__(self, venue: str, *, quote_coin: str, fees: FeeSchedule, book: Callable[[str], OrderBook | None],
                 instrument: Callable[[str], Instrument | None], now_ms: Callable[[], int],
                 quote_balance: Callable[[], Decimal], state_path: str | Path | None = None,
                 starting_coins: dict[str, Decimal] | None = None) -> None:
        self.venue = venue
        self.quote_coin = quote_coin
        self.fees = fees
        self._book = book
        self._instrument = instrument
        self._now_ms = now_ms
        self._quote_balance = quote_balance
        self._tables = _SpotTables(state_path)
        self.orders: dict[str, SpotOrder] = {}
        self.fills: list[SpotFill] = []
        self.wallet: dict[str, Decimal] = {}  # base coins: balance; quote coin: delta to the perp wallet
        self._seq = 0
        loaded = self._tables.load(venue)
        if loaded is None:
            self.wallet = {coin: Decimal(amount) for coin, amount in (starting_coins or {}).items()}
            self._tables.write(venue, [], [], self.wallet)
        else:
            orders, fills, self.wallet = loaded
            self.orders = {o.client_order_id: o for o in orders}
            self.fills = fills
            self._seq = max([o.seq for o in orders] + [f.seq for f in fills] + [0])

    # -- read-outs ----------------------------------------------------------------------------------
    def balance(self, coin: str) -> Decimal:
        """Total balance of ``coin`` (for the quote coin: the perp wallet plus the spot delta)."""
        if coin == self.quote_coin:
            return self._quote_balance() + self.wallet.get(coin, ZERO)
        return self.wallet.get(coin, ZERO)

    def locked(self, coin: str) -> Decimal:
        """What resting orders hold: base of resting sells, worst-case quote of resting buys."""
        total = ZERO
        for o in self.orders.values():
            if o.is_terminal:
                continue
            if o.side is OrderSide.SELL and coin == o.symbol:
                total += o.remaining_base
            elif o.side is OrderSide.BUY and coin == self.quote_coin and o.limit_price is not None:
                total += o.remaining_base * o.limit_price
        return total

    def coins(self) -> list[str]:
        return sorted({c for c in self.wallet if c != self.quote_coin})

    def fills_of(self, client_order_id: str) -> list[SpotFill]:
        return [f for f in self.fills if f.client_order_id == client_order_id]

    def by_venue_id(self, venue_order_id: str) -> SpotOrder | None:
        return next((o for o in self.orders.values() if o.venue_order_id == venue_order_id), None)

    # -- orders ---------------------------------------------------------------------------------------
    def place(self, *, client_order_id: str, symbol: str, side: OrderSide, order_type: str, time_in_force: str,
              qty: Decimal, price: Decimal | None, qty_in_quote: bool = False) -> SpotOrder:
        """Accept and match one order (taker part at once; a GTC remainder rests). Raises ``SpotRefusal``."""
        if client_order_id in self.orders:
            raise SpotRefusal(REFUSE_DUPLICATE, "OrderLinkedID is duplicate")
        inst = self._instrument(symbol)
        if inst is None:
            raise SpotRefusal(REFUSE_PARAMS, "symbol invalid")
        if order_type not in ORDER_TYPES or time_in_force not in TIME_IN_FORCE:
            raise SpotRefusal(REFUSE_PARAMS, f"orderType/timeInForce {order_type}/{time_in_force} invalid")
        if not qty.is_finite() or qty <= 0 or (price is not None and (not price.is_finite() or price <= 0)):
            raise SpotRefusal(REFUSE_PARAMS, "qty/price must be positive")
        if order_type == "limit" and price is None:
            raise SpotRefusal(REFUSE_PARAMS, "price is required for a limit order")
        if price is not None and price % inst.tick_size != 0:
            raise SpotRefusal(REFUSE_PARAMS, "Order price has too many decimals.")
        if not qty_in_quote:
            if qty % inst.lot_size_base != 0:
                raise SpotRefusal(REFUSE_PARAMS, "Order quantity has too many decimals.")
            if qty < inst.min_size_base:
                raise SpotRefusal(REFUSE_MIN, "Order quantity is lower than the minimum.")
        book = self._book(symbol)
        if book is None:
            raise SpotRefusal(REFUSE_PARAMS, "no market for the symbol now")
        levels = book.levels_for(side)
        reference = price if price is not None else (levels[0].price if levels else None)
        notional = qty if qty_in_quote else qty * (reference or ZERO)
        if notional < inst.min_notional_usd:
            raise SpotRefusal(REFUSE_MIN, "Order value is lower than the minimum.")
        self._check_funds(symbol, side, qty, price, book, qty_in_quote)
        if time_in_force == "PostOnly" and levels and price is not None and (
                (side is OrderSide.BUY and levels[0].price <= price) or (side is OrderSide.SELL and levels[0].price >= price)):
            raise SpotRefusal(REFUSE_POST_ONLY, "post_only order would take liquidity")
        now = self._now_ms()
        self._seq += 1
        order = SpotOrder(
            client_order_id=client_order_id, venue_order_id=f"{self.venue}-spot-o{self._seq}", symbol=symbol,
            side=side, order_type=order_type, time_in_force=time_in_force, limit_price=price,
            requested_base=ZERO if qty_in_quote else qty, requested_quote=qty if qty_in_quote else None,
            filled_base=ZERO, filled_quote=ZERO, fee_base=ZERO, fee_quote=ZERO, status="new",
            created_ts_ms=now, updated_ts_ms=now, seq=self._seq)
        if time_in_force == "PostOnly":
            self._commit([order], [], {})
            return order
        accepted = order
        order, fills, wallet = self._take(order, book, inst, Liquidity.TAKER)
        if order.time_in_force == "FOK" and order.filled_base < order.requested_base:
            order, fills, wallet = replace(accepted, status="canceled"), [], {}  # all or nothing: nothing
        elif not (order.order_type == "limit" and order.time_in_force == "GTC") and order.status != "filled":
            # IOC / market: whatever did not fill at once is cancelled
            order = replace(order, status="partially_filled_canceled" if order.filled_base > 0 else "canceled")
        self._commit([order], fills, wallet)
        return order

    def _check_funds(self, symbol: str, side: OrderSide, qty: Decimal, price: Decimal | None, book: OrderBook,
                     qty_in_quote: bool) -> None:
        if side is OrderSide.SELL:
            free = self.balance(symbol) - self.locked(symbol)
            if qty > free:
                raise SpotRefusal(REFUSE_BALANCE, f"Insufficient balance: sell {qty} {symbol}, free {free}")
            return
        if qty_in_quote:
            cost = qty
        else:
            worst = price if price is not None else walk_book(book.asks, side, qty).vwap or ZERO
            cost = qty * worst
        free = self.balance(self.quote_coin) - self.locked(self.quote_coin)
        if cost > free:
            raise SpotRefusal(REFUSE_BALANCE, f"Insufficient balance: buy needs {cost} {self.quote_coin}, free {free}")

    def _take(self, order: SpotOrder, book: OrderBook, inst: Instrument,
              liquidity: Liquidity) -> tuple[SpotOrder, list[SpotFill], dict[str, Decimal]]:
        levels = book.levels_for(order.side)
        if order.requested_quote is not None:  # market buy in quote units: as much base as the quote buys
            budget, size = order.requested_quote - order.filled_quote, ZERO
            for level in levels:
                take = min(level.size_base, budget / level.price)
                size += take
                budget -= take * level.price
                if budget <= 0:
                    break
            size = (size / inst.lot_size_base).to_integral_value(rounding=ROUND_DOWN) * inst.lot_size_base
        else:
            size = order.remaining_base
        walk = walk_book(levels, order.side, size, limit_price=order.limit_price, lot_size_base=inst.lot_size_base)
        rate = self.fees.rate(liquidity)
        fills: list[SpotFill] = []
        wallet: dict[str, Decimal] = {}
        base_delta, quote_delta = ZERO, ZERO
        filled_base, filled_quote, fee_base, fee_quote = (order.filled_base, order.filled_quote, order.fee_base,
                                                          order.fee_quote)
        now = self._now_ms()
        for level in walk.fills:
            self._seq += 1
            value = level.price * level.size_base
            if order.side is OrderSide.BUY:
                fee = level.size_base * rate
                base_delta += level.size_base - fee
                quote_delta -= value
                fee_base += fee
                coin = order.symbol
            else:
                fee = value * rate
                base_delta -= level.size_base
                quote_delta += value - fee
                fee_quote += fee
                coin = self.quote_coin
            filled_base += level.size_base
            filled_quote += value
            fills.append(SpotFill(
                trade_id=f"{self.venue}-spot-t{self._seq}", client_order_id=order.client_order_id,
                venue_order_id=order.venue_order_id, symbol=order.symbol, side=order.side, price=level.price,
                size_base=level.size_base, fee=fee, fee_coin=coin, fee_rate=rate, liquidity=liquidity, ts_ms=now,
                seq=self._seq))
        if fills:
            wallet[order.symbol] = self.wallet.get(order.symbol, ZERO) + base_delta
            wallet[self.quote_coin] = self.wallet.get(self.quote_coin, ZERO) + quote_delta
        complete = (filled_base >= order.requested_base) if order.requested_quote is None else bool(fills)
        status = "filled" if complete and filled_base > 0 else ("partially_filled" if filled_base > 0 else "new")
        order = replace(order, filled_base=filled_base, filled_quote=filled_quote, fee_base=fee_base,
                        fee_quote=fee_quote, status=status, updated_ts_ms=now if fills else order.updated_ts_ms)
        return order, fills, wallet

    def cancel(self, client_order_id: str) -> SpotOrder | None:
        """Cancel a resting order; None when unknown or already terminal."""
        order = self.orders.get(client_order_id)
        if order is None or order.is_terminal:
            return None
        order = replace(order, status="partially_filled_canceled" if order.filled_base > 0 else "canceled",
                        updated_ts_ms=self._now_ms())
        self._commit([order], [], {})
        return order

    def match_resting(self) -> list[str]:
        """Resting limits fill as maker when the book has traded through their price; the changed ids."""
        changed = []
        for order in sorted((o for o in self.orders.values() if not o.is_terminal), key=lambda o: o.seq):
            book, inst = self._book(order.symbol), self._instrument(order.symbol)
            if book is None or inst is None or order.limit_price is None:
                continue
            levels = book.levels_for(order.side)
            crossed = [lv for lv in levels
                       if (lv.price < order.limit_price if order.side is OrderSide.BUY else lv.price > order.limit_price)]
            if not crossed:
                continue
            # it fills at its own limit price, against the depth that traded through it
            level = (BookLevel(price=order.limit_price, size_base=sum((lv.size_base for lv in crossed), ZERO)),)
            at_limit = OrderBook(venue=book.venue, symbol=book.symbol, bids=() if order.side is OrderSide.BUY else level,
                                 asks=level if order.side is OrderSide.BUY else (), ts_ms=book.ts_ms)
            updated, fills, wallet = self._take(order, at_limit, inst, Liquidity.MAKER)
            if fills:
                self._commit([updated], fills, wallet)
                changed.append(order.client_order_id)
        return changed

    def _commit(self, orders: list[SpotOrder], fills: list[SpotFill], wallet: dict[str, Decimal]) -> None:
        self._tables.write(self.venue, orders, fills, wallet)
        for order in orders:
            self.orders[order.client_order_id] = order
        self.fills.extend(fills)
        self.wallet.update(wallet)

    def close(self) -> None:
        self._tables.close()
