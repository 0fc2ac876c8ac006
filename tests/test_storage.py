"""Storage: exact Decimals, dedupe, atomic intents, pragmas, timeline, PnL, async facade."""

from __future__ import annotations

import re
import sqlite3
import tempfile
import threading
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.domain import (
    Fill,
    FundingPayment,
    LegSide,
    Liquidity,
    Opportunity,
    OrderReport,
    OrderRequest,
    OrderSide,
    OrderStatus,
)
from storage import (
    AsyncStorage,
    EventRecord,
    MachineKind,
    NotFound,
    OrderIntent,
    OrderPurpose,
    PositionRecord,
    Severity,
    Storage,
    StorageError,
    TransitionRecord,
    UnknownOrder,
    client_order_id,
    open_database,
)
from storage.schema import LATEST_VERSION

D = Decimal
T0 = 1_700_000_000_000  # 2023-11-14T22:13:20.000Z


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "bot.db"


@pytest.fixture
def storage(db_path: Path):
    store = Storage.open(db_path)
    yield store
    store.close()


def make_position(
    position_id: str = "pos-1", state: str = "opening", **overrides
) -> PositionRecord:
    values = dict(
        id=position_id,
        symbol="BTC",
        long_venue="alpha",
        short_venue="beta",
        state=state,
        target_size_base=D("2"),
        notional_usd=D("200"),
        created_at_ts_ms=T0,
        updated_at_ts_ms=T0,
    )
    values.update(overrides)
    return PositionRecord(**values)


def make_intent(
    position_id: str,
    venue: str,
    side: OrderSide,
    leg: LegSide,
    purpose: OrderPurpose = OrderPurpose.OPEN,
    size_base: Decimal = D("2"),
    ts_ms: int = T0,
    attempt: int = 0,
) -> OrderIntent:
    cid = client_order_id(position_id, purpose, leg, attempt)
    request = OrderRequest(
        client_order_id=cid,
        venue=venue,
        symbol="BTC",
        side=side,
        size_base=size_base,
        reduce_only=purpose is not OrderPurpose.OPEN,
    )
    return OrderIntent(
        request=request,
        purpose=purpose,
        created_at_ts_ms=ts_ms,
        position_id=position_id,
        leg=leg,
        attempt=attempt,
    )


def open_intents(position_id: str = "pos-1") -> list[OrderIntent]:
    return [
        make_intent(position_id, "alpha", OrderSide.BUY, LegSide.LONG),
        make_intent(position_id, "beta", OrderSide.SELL, LegSide.SHORT),
    ]


def make_fill(
    intent: OrderIntent,
    trade_id: str,
    price: str,
    size_base: str,
    fee_usd: str,
    ts_ms: int,
) -> Fill:
    request = intent.request
    return Fill(
        venue=request.venue,
        symbol=request.symbol,
        client_order_id=request.client_order_id,
        trade_id=trade_id,
        side=request.side,
        price=D(price),
        size_base=D(size_base),
        fee_usd=D(fee_usd),
        liquidity=Liquidity.TAKER,
        ts_ms=ts_ms,
    )


def make_payment(venue: str, payment_id: str, amount_usd: str, ts_ms: int) -> FundingPayment:
    return FundingPayment(
        payment_id=payment_id,
        venue=venue,
        symbol="BTC",
        ts_ms=ts_ms,
        rate=D("0.0001"),
        position_size_base=D("2"),
        mark_price=D("100"),
        amount_usd=D(amount_usd),
    )


# -- exact Decimals -------------------------------------------------------------------------


def test_decimal_sum_and_30_digit_values_round_trip_exactly(storage: Storage) -> None:
    point_three = D("0.1") + D("0.2")
    thirty_digits = D("123456789012345678.901234567890")
    tiny = D("-0.000000000000000000000000000001")
    position = make_position(
        target_size_base=point_three,
        notional_usd=thirty_digits,
        entry_apr=tiny,
        entry_spread_hourly=D("1E+3"),
    )
    storage.insert_position(position)

    loaded = storage.get_position("pos-1")
    assert loaded == position
    assert str(loaded.target_size_base) == "0.3"
    assert str(loaded.notional_usd) == "123456789012345678.901234567890"
    assert str(loaded.entry_apr) == "-1E-30"
    assert str(loaded.entry_spread_hourly) == "1E+3"
    stored = storage.db.execute(
        "SELECT target_size_base, typeof(target_size_base), notional_usd, typeof(notional_usd)"
        " FROM positions"
    ).fetchone()
    assert stored == ("0.3", "text", "123456789012345678.901234567890", "text")


def test_fill_and_funding_decimals_round_trip(storage: Storage) -> None:
    intents = open_intents()
    storage.insert_position_with_intents(make_position(), intents)
    fill = make_fill(
        intents[0],
        "t1",
        "67012.123456789012345678901234",
        "0.000000000000000000000000001",
        "0.3",
        T0,
    )
    payment = make_payment("alpha", "f1", "-987654321098765432109876.543210", T0)
    assert storage.record_fill(fill)
    assert storage.record_funding_payment(payment, "pos-1", LegSide.LONG)
    assert storage.list_fills("pos-1") == [fill]
    assert storage.list_funding_payments("pos-1") == [payment]
    assert storage.db.execute("SELECT typeof(price), typeof(size_base) FROM fills").fetchone() == (
        "text",
        "text",
    )


@settings(max_examples=150, deadline=None)
@given(value=st.decimals(allow_nan=False, allow_infinity=False))
def test_any_finite_decimal_round_trips(value: Decimal) -> None:
    with tempfile.TemporaryDirectory() as directory:
        store = Storage.open(Path(directory) / "p.db")
        try:
            store.set_decimal("x", value, T0)
            back = store.get_decimal("x")
        finally:
            store.close()
    assert back == value
    assert str(back) == str(value)


@pytest.mark.parametrize("bad", [0.1, float("nan"), D("NaN"), D("Infinity"), True, "0.1"])
def test_non_exact_values_are_refused(storage: Storage, bad) -> None:
    with pytest.raises(StorageError):
        storage.insert_position(make_position(notional_usd=bad))
    assert storage.get_position("pos-1") is None


def test_floats_in_json_details_are_refused(storage: Storage) -> None:
    event = EventRecord(T0, "denial", Severity.INFO, "no", details={"edge": 0.5})
    with pytest.raises(StorageError):
        storage.record_event(event)
    assert storage.list_events() == []


# -- dedupe ---------------------------------------------------------------------------------


def test_duplicate_fill_is_a_noop_returning_false(storage: Storage) -> None:
    intents = open_intents()
    storage.insert_position_with_intents(make_position(), intents)
    fill = make_fill(intents[0], "trade-9", "100", "1", "0.1", T0 + 5)
    assert storage.record_fill(fill) is True
    assert storage.record_fill(fill) is False
    # same trade id, different price: still the same venue trade, still ignored
    assert storage.record_fill(make_fill(intents[0], "trade-9", "999", "1", "0.1", T0 + 6)) is False
    # the same trade id on another venue is a different trade
    assert storage.record_fill(make_fill(intents[1], "trade-9", "101", "1", "0.1", T0 + 7)) is True
    assert storage.record_fills([fill, make_fill(intents[0], "trade-10", "100", "1", "0", T0)]) == 1
    assert storage.db.execute("SELECT COUNT(*) FROM fills").fetchone()[0] == 3
    assert [f.price for f in storage.list_fills("pos-1") if f.trade_id == "trade-9"] == [
        D("100"),
        D("101"),
    ]


def test_duplicate_funding_payment_is_a_noop_returning_false(storage: Storage) -> None:
    storage.insert_position(make_position())
    payment = make_payment("alpha", "fund-1", "-0.5", T0 + 1000)
    assert storage.record_funding_payment(payment, "pos-1", LegSide.LONG) is True
    assert storage.record_funding_payment(payment, "pos-1", LegSide.LONG) is False
    assert storage.record_funding_payment(
        make_payment("beta", "fund-1", "0.5", T0), "pos-1", LegSide.SHORT
    )
    assert len(storage.list_funding_payments("pos-1")) == 2


def test_fill_for_unknown_order_is_refused(storage: Storage) -> None:
    stray = Fill(
        "alpha",
        "BTC",
        "nobody-sent-this",
        "t1",
        OrderSide.BUY,
        D("1"),
        D("1"),
        D("0"),
        Liquidity.TAKER,
        T0,
    )
    with pytest.raises(UnknownOrder):
        storage.record_fill(stray)


def test_fill_on_the_wrong_venue_for_its_order_is_refused(storage: Storage) -> None:
    intents = open_intents()
    storage.insert_position_with_intents(make_position(), intents)
    wrong = make_fill(intents[0], "t1", "100", "1", "0", T0)
    wrong = Fill(**{**{f: getattr(wrong, f) for f in wrong.__dataclass_fields__}, "venue": "beta"})
    with pytest.raises(StorageError):
        storage.record_fill(wrong)
    assert storage.list_fills("pos-1") == []


# -- transactions ---------------------------------------------------------------------------


def test_position_and_intents_are_one_transaction(storage: Storage) -> None:
    intents = open_intents()
    duplicate = [
        intents[0],
        intents[0],
    ]  # second insert fails after the position row and first intent
    with pytest.raises(sqlite3.IntegrityError):
        storage.insert_position_with_intents(make_position(), duplicate)
    assert storage.get_position("pos-1") is None
    assert storage.db.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 0

    storage.insert_position_with_intents(make_position(), intents)
    assert storage.get_position("pos-1") is not None
    assert [o.client_order_id for o in storage.list_orders("pos-1")] == [
        i.request.client_order_id for i in intents
    ]
    assert all(o.status is None for o in storage.list_orders("pos-1"))  # pending


def test_failure_inside_a_grouped_transaction_writes_nothing(storage: Storage) -> None:
    class Boom(Exception):
        pass

    def write_then_fail(store: Storage) -> None:
        store.insert_position(make_position())
        store.insert_order_intents(open_intents())
        store.record_transition(
            TransitionRecord(T0, MachineKind.POSITION, "pos-1", "scanning", "opening", "open")
        )
        raise Boom

    with pytest.raises(Boom):
        storage.run(write_then_fail)
    for table in ("positions", "orders", "transitions"):
        assert storage.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0
    # the connection is usable afterwards and not stuck in a transaction
    assert not storage.db.conn.in_transaction
    storage.insert_position(make_position())
    assert storage.get_position("pos-1") is not None


# -- connection and schema ------------------------------------------------------------------


def test_pragmas_wal_normal_foreign_keys(db_path: Path) -> None:
    db = open_database(db_path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    finally:
        db.close()
    assert db_path.parent.is_dir()


def test_foreign_keys_are_enforced(storage: Storage) -> None:
    orphan = make_intent("no-such-position", "alpha", OrderSide.BUY, LegSide.LONG)
    with pytest.raises(sqlite3.IntegrityError):
        storage.insert_order_intent(orphan)
    with pytest.raises(sqlite3.IntegrityError):
        storage.db.execute(
            "INSERT INTO fills (venue, trade_id, symbol, client_order_id, side, price, size_base,"
            " fee_usd, liquidity, ts_ms, ts_iso)"
            " VALUES ('alpha', 't', 'BTC', 'missing', 'buy', '1', '1', '0', 'taker', 0, 'x')"
        )
    with pytest.raises(sqlite3.IntegrityError):
        storage.record_funding_payment(
            make_payment("alpha", "f", "1", T0), "no-such-position", None
        )


def test_reopening_keeps_data_and_schema_is_idempotent(db_path: Path) -> None:
    first = Storage.open(db_path)
    first.insert_position_with_intents(make_position(), open_intents())
    first.set_bot_state("monitoring", T0)
    first.close()

    second = Storage.open(db_path)
    try:
        assert second.get_position("pos-1") == make_position()
        assert len(second.list_orders("pos-1")) == 2
        assert second.get_bot_state().state == "monitoring"
        assert second.db.execute("SELECT version FROM schema_version ORDER BY version").fetchall() == [
            (v,) for v in range(1, LATEST_VERSION + 1)
        ]
    finally:
        second.close()
    third = Storage.open(db_path)
    third.close()


def test_a_newer_schema_is_refused(db_path: Path) -> None:
    store = Storage.open(db_path)
    store.db.execute(
        "INSERT INTO schema_version VALUES (?, 'from the future')", [LATEST_VERSION + 1]
    )
    store.close()
    with pytest.raises(StorageError, match="newer"):
        open_database(db_path)


# -- timeline -------------------------------------------------------------------------------


def test_timeline_orders_by_time_then_recording_order(storage: Storage) -> None:
    intents = open_intents()
    storage.insert_position(make_position())
    storage.record_transition(
        TransitionRecord(T0, MachineKind.POSITION, "pos-1", "scanning", "opening", "open")
    )
    storage.insert_order_intents(intents)  # same ms as the transition, recorded after it
    # fills recorded out of time order
    storage.record_fill(make_fill(intents[1], "b1", "101", "2", "0.1", T0 + 5))
    storage.record_fill(make_fill(intents[0], "a1", "100", "2", "0.1", T0 + 3))
    storage.record_transition(
        TransitionRecord(
            T0 + 5, MachineKind.POSITION, "pos-1", "opening", "monitoring", "legs_filled"
        )
    )
    storage.record_funding_payment(
        make_payment("beta", "f1", "0.02", T0 + 2000), "pos-1", LegSide.SHORT
    )
    storage.record_event(
        EventRecord(T0 + 1500, "signal", Severity.WARNING, "SIGTERM", entity_id="pos-1")
    )
    # noise that belongs to other entities
    storage.record_transition(TransitionRecord(T0 + 1, MachineKind.BOT, "pos-1", "a", "b", "c"))
    storage.record_event(EventRecord(T0 + 1, "signal", Severity.INFO, "other", entity_id="pos-2"))

    rows = storage.timeline("pos-1")
    summary = [(row.ts_ms - T0, row.kind) for row in rows]
    assert summary == [
        (0, "transition"),
        (0, "order"),
        (0, "order"),
        (3, "fill"),
        (5, "fill"),
        (5, "transition"),
        (1500, "event"),
        (2000, "funding"),
    ]
    assert rows[0].data["dest"] == "opening"
    assert rows[3].data["trade_id"] == "a1"
    assert rows[5].data["dest"] == "monitoring"
    assert rows[6].data["message"] == "SIGTERM"
    assert [row.seq for row in rows[:3]] == sorted(row.seq for row in rows[:3])


# -- totals ---------------------------------------------------------------------------------


def test_realized_pnl_of_a_closed_position_by_hand(storage: Storage) -> None:
    pid = "pos-1"
    opens = open_intents(pid)
    closes = [
        make_intent(pid, "alpha", OrderSide.SELL, LegSide.LONG, OrderPurpose.CLOSE),
        make_intent(pid, "beta", OrderSide.BUY, LegSide.SHORT, OrderPurpose.CLOSE),
    ]
    storage.insert_position_with_intents(make_position(pid), opens)
    storage.insert_order_intents(closes)
    storage.record_fills(
        [
            make_fill(opens[0], "a-open", "100", "2", "0.2", T0 + 1),  # long: buy 2 @ 100
            make_fill(opens[1], "b-open", "101", "2", "0.101", T0 + 1),  # short: sell 2 @ 101
        ]
    )
    partial = storage.position_totals(pid)
    assert partial.is_flat is False
    assert partial.price_pnl_usd is None and partial.realized_pnl_usd is None
    assert partial.net_base_by_venue == {"alpha": D("2"), "beta": D("-2")}

    storage.record_funding_payment(make_payment("alpha", "fa", "-0.5", T0 + 10), pid, LegSide.LONG)
    storage.record_funding_payment(make_payment("beta", "fb", "1.25", T0 + 10), pid, LegSide.SHORT)
    storage.record_fills(
        [
            make_fill(
                closes[0], "a-close-1", "110", "1.5", "0.165", T0 + 20
            ),  # long: sell 1.5 @ 110
            make_fill(
                closes[0], "a-close-2", "110", "0.5", "0.055", T0 + 21
            ),  # long: sell 0.5 @ 110
            make_fill(closes[1], "b-close", "108", "2", "0.216", T0 + 20),  # short: buy 2 @ 108
        ]
    )
    totals = storage.position_totals(pid)
    # long leg: sold 220 - bought 200 = +20; short leg: sold 202 - bought 216 = -14
    assert totals.price_pnl_usd == D("6")
    # fees 0.2 + 0.101 + 0.165 + 0.055 + 0.216 = 0.737; funding -0.5 + 1.25 = 0.75
    assert totals.fees_usd == D("0.737")
    assert totals.funding_usd == D("0.75")
    assert totals.realized_pnl_usd == D("6.013")
    assert totals.is_flat and totals.net_base_by_venue == {"alpha": D("0"), "beta": D("0")}
    assert (totals.fill_count, totals.funding_count) == (5, 2)


def test_totals_do_not_round_to_the_default_28_digit_context(storage: Storage) -> None:
    pid = "pos-1"
    opens = open_intents(pid)
    closes = [make_intent(pid, "alpha", OrderSide.SELL, LegSide.LONG, OrderPurpose.CLOSE)]
    storage.insert_position_with_intents(make_position(pid), opens)
    storage.insert_order_intents(closes)
    size = "1.000000000000000000000000000001"  # 31 significant digits
    storage.record_fill(make_fill(opens[0], "o", "100", size, "0", T0))
    storage.record_fill(make_fill(closes[0], "c", "100.01", size, "0", T0 + 1))
    # 0.01 * 1.000000000000000000000000000001, exactly
    assert storage.position_totals(pid).price_pnl_usd == D("0.01000000000000000000000000000001")


def test_totals_of_unknown_position_raise(storage: Storage) -> None:
    with pytest.raises(NotFound):
        storage.position_totals("ghost")


# -- positions, orders, state ---------------------------------------------------------------


def test_update_position_and_load_open_positions(storage: Storage) -> None:
    storage.insert_position(make_position("p-a"))
    storage.insert_position(make_position("p-b", created_at_ts_ms=T0 + 1))
    updated = storage.update_position(
        "p-a",
        T0 + 500,
        state="closed",
        closed_at_ts_ms=T0 + 500,
        exit_reason="spread_flipped",
        long_size_base=D("0"),
        unhedged_ms_exit=12,
    )
    assert updated.state == "closed" and updated.updated_at_ts_ms == T0 + 500
    assert updated.unhedged_ms_exit == 12 and updated.exit_reason == "spread_flipped"
    iso = storage.db.execute("SELECT closed_at_iso FROM positions WHERE id = 'p-a'").fetchone()[0]
    assert iso == "2023-11-14T22:13:20.500Z"
    assert [p.id for p in storage.load_open_positions()] == ["p-b"]
    assert [p.id for p in storage.load_open_positions(terminal_states=())] == ["p-a", "p-b"]
    assert [p.id for p in storage.list_positions(states=["closed"])] == ["p-a"]
    with pytest.raises(NotFound):
        storage.update_position("ghost", T0, state="closed")
    with pytest.raises(StorageError):
        storage.update_position("p-b", T0, created_at_ts_ms=0)


def test_upsert_position_overwrites(storage: Storage) -> None:
    storage.upsert_position(make_position())
    storage.upsert_position(
        make_position(state="monitoring", long_size_base=D("2"), updated_at_ts_ms=T0 + 9)
    )
    loaded = storage.get_position("pos-1")
    assert (loaded.state, loaded.long_size_base, loaded.updated_at_ts_ms) == (
        "monitoring",
        D("2"),
        T0 + 9,
    )


def test_position_from_opportunity_keeps_entry_values(storage: Storage) -> None:
    opportunity = Opportunity(
        symbol="ETH",
        long_venue="alpha",
        short_venue="beta",
        long_rate=D("0.0001"),
        long_interval_hours=D("8"),
        short_rate=D("0.0005"),
        short_interval_hours=D("4"),
        spread_hourly=D("0.0001125"),
        apr=D("0.9855"),
        costs=D("1.2"),
        expected_net=D("3.3"),
        breakeven_hours=None,
        notional_usd=D("1000"),
        horizon_hours=D("24"),
        fees_usd=D("1"),
        slippage_usd=D("0.1"),
        basis_usd=D("0.1"),
        long_price=D("2000.5"),
        short_price=D("2001"),
    )
    position = PositionRecord.from_opportunity("p-e", opportunity, D("0.5"), "scanning", T0)
    storage.insert_position(position)
    loaded = storage.get_position("p-e")
    assert loaded.entry_spread_hourly == D("0.0001125") and loaded.entry_long_price == D("2000.5")
    assert loaded.entry_details["short_interval_hours"] == "4"
    assert loaded.entry_details["breakeven_hours"] is None


def test_order_status_updates_and_terminal_guard(storage: Storage) -> None:
    intents = open_intents()
    storage.insert_position_with_intents(make_position(), intents)
    cid = intents[0].request.client_order_id
    assert [o.client_order_id for o in storage.load_unfinished_orders()] == [
        i.request.client_order_id for i in intents
    ]
    report = OrderReport(
        client_order_id=cid,
        venue="alpha",
        symbol="BTC",
        side=OrderSide.BUY,
        status=OrderStatus.FILLED,
        requested_base=D("2"),
        filled_base=D("2"),
        avg_price=D("100.5"),
        fills=(
            make_fill(intents[0], "x1", "100", "1", "0.1", T0 + 1),
            make_fill(intents[0], "x2", "101", "1", "0.1", T0 + 2),
        ),
        venue_order_id="v-77",
    )
    assert storage.apply_order_report(report, T0 + 3) == 2
    assert storage.apply_order_report(report, T0 + 4) == 0  # replayed report: fills deduped
    order = storage.get_order(cid)
    assert (order.status, order.filled_base, order.avg_price, order.venue_order_id) == (
        OrderStatus.FILLED,
        D("2"),
        D("100.5"),
        "v-77",
    )
    assert order.is_terminal
    # a stale non-terminal report never resurrects a filled order
    assert storage.update_order_status(cid, OrderStatus.NEW, T0 + 5) is False
    assert storage.get_order(cid).status is OrderStatus.FILLED
    assert [o.client_order_id for o in storage.load_unfinished_orders()] == [
        intents[1].request.client_order_id
    ]
    with pytest.raises(NotFound):
        storage.update_order_status("ghost", OrderStatus.FILLED, T0)


def test_bot_state_is_a_single_row_and_kv_works(storage: Storage) -> None:
    assert storage.get_bot_state() is None
    storage.set_bot_state("initializing", T0)
    storage.set_bot_state("halted", T0 + 1)
    assert storage.db.execute("SELECT COUNT(*) FROM bot_state").fetchone()[0] == 1
    state = storage.get_bot_state()
    assert (state.state, state.updated_at_ts_ms) == ("halted", T0 + 1)
    storage.set_decimal("peak_equity_usd", D("10000.000000000000000001"), T0)
    storage.set_decimal("peak_equity_usd", D("10500.25"), T0 + 1)
    assert storage.get_decimal("peak_equity_usd") == D("10500.25")
    assert storage.get_kv("missing") is None


def test_transitions_and_events_round_trip(storage: Storage) -> None:
    batch = [
        TransitionRecord(
            T0 + i, MachineKind.BOT, "bot", f"s{i}", f"s{i + 1}", "go", details={"n": D(i)}
        )
        for i in range(3)
    ]
    storage.record_transitions(batch)
    loaded = storage.list_transitions(machine=MachineKind.BOT)
    assert [t.dest for t in loaded] == ["s1", "s2", "s3"]
    assert loaded[2].details == {"n": "2"}
    event_id = storage.record_event(
        EventRecord(T0, "breaker", Severity.ERROR, "unhedged too long", details={"ms": 1200})
    )
    assert event_id == 1
    assert storage.list_events(kind="breaker")[0].severity is Severity.ERROR
    assert storage.list_events(since_ts_ms=T0 + 1) == []
    iso = storage.db.execute("SELECT ts_iso FROM transitions ORDER BY id LIMIT 1").fetchone()[0]
    assert iso == "2023-11-14T22:13:20.000Z"


@dataclass(frozen=True)
class MachineOutboxRecord:
    """Shaped like machines.records.TransitionRecord: ``entity`` names the machine kind."""

    entity: str
    entity_id: str
    source: str
    dest: str
    trigger: str
    reason: str
    details: dict
    ts_ms: int | None = None


def test_position_update_and_its_transitions_are_one_transaction(storage: Storage) -> None:
    storage.insert_position(make_position())
    unstamped = MachineOutboxRecord(
        "position", "pos-1", "opening", "monitoring", "legs_settled", "", {}
    )
    with pytest.raises(StorageError, match="stamp"):
        storage.update_position_with_transitions("pos-1", T0 + 1, [unstamped], state="monitoring")
    assert storage.get_position("pos-1").state == "opening"
    assert storage.list_transitions() == []

    stamped = MachineOutboxRecord(
        "position",
        "pos-1",
        "opening",
        "monitoring",
        "legs_settled",
        "filled",
        {"long_size_base": D("2.000000000000000000000000000001")},
        ts_ms=T0 + 1,
    )
    updated = storage.update_position_with_transitions(
        "pos-1", T0 + 1, [stamped], state="monitoring", long_size_base=D("2")
    )
    assert updated.state == "monitoring"
    [logged] = storage.list_transitions(machine=MachineKind.POSITION, entity_id="pos-1")
    assert (logged.source, logged.dest, logged.trigger, logged.reason) == (
        "opening",
        "monitoring",
        "legs_settled",
        "filled",
    )
    assert logged.details == {"long_size_base": "2.000000000000000000000000000001"}


# -- client order ids -----------------------------------------------------------------------


def test_client_order_ids_are_deterministic_short_and_venue_safe() -> None:
    cid = client_order_id(
        "3f2b9c1e-aaaa-4bbb-8ccc-0123456789ab", OrderPurpose.OPEN, LegSide.LONG, 0
    )
    assert cid == client_order_id(
        "3f2b9c1e-aaaa-4bbb-8ccc-0123456789ab", OrderPurpose.OPEN, LegSide.LONG, 0
    )
    assert len(cid) <= 32 and re.fullmatch(r"[0-9a-z]+", cid)
    variants = {
        client_order_id(pid, purpose, leg, attempt)
        for pid in ("p1", "p2")
        for purpose in OrderPurpose
        for leg in (LegSide.LONG, LegSide.SHORT, None)
        for attempt in (0, 1, 9999)
    }
    assert len(variants) == 2 * len(OrderPurpose) * 3 * 3
    for bad_attempt in (-1, 10_000, True):
        with pytest.raises(ValueError):
            client_order_id("p1", OrderPurpose.OPEN, LegSide.LONG, bad_attempt)
    with pytest.raises(ValueError):
        client_order_id("", OrderPurpose.OPEN, LegSide.LONG, 0)


# -- async facade ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_storage_serializes_calls_on_one_thread(db_path: Path) -> None:
    store = await AsyncStorage.open(db_path)
    try:
        intents = open_intents()
        await store.insert_position_with_intents(make_position(), intents)
        fills = [make_fill(intents[i % 2], f"t{i}", "100", "0.1", "0", T0 + i) for i in range(20)]
        results: list[bool] = []

        async def record(fill: Fill) -> None:
            results.append(await store.record_fill(fill))

        async with anyio.create_task_group() as tg:
            for fill in fills + fills[:5]:  # five duplicates racing their originals
                tg.start_soon(record, fill)
        assert sorted(results) == [False] * 5 + [True] * 20
        assert len(await store.list_fills("pos-1")) == 20

        def grouped(sync: Storage) -> int:
            sync.update_position("pos-1", T0 + 100, state="monitoring")
            sync.set_bot_state("monitoring", T0 + 100)
            return len(sync.list_orders("pos-1"))

        assert await store.run(grouped) == 2
        assert (await store.get_position("pos-1")).state == "monitoring"
        assert (await store.get_bot_state()).state == "monitoring"
        assert [p.id for p in await store.load_open_positions()] == ["pos-1"]
    finally:
        await store.aclose()


def test_a_transaction_that_reads_first_still_writes_when_another_connection_commits_meanwhile(
        db_path: Path) -> None:
    """The bot's writer reads (sqlite-utils looks up the table) before it inserts; the operator
    surface's own connection may commit a control request in between. A deferred BEGIN fails
    that insert at once with "database is locked" (a stale WAL snapshot cannot be upgraded);
    the repository's transactions take the write lock up front and wait instead."""
    bot = Storage.open(db_path)
    surface = Storage.open(db_path)
    other = threading.Thread(target=lambda: surface.set_kv("control_halt", "manual: test", T0))
    try:
        def write(s: Storage) -> None:
            s.list_transitions()  # a read inside the transaction
            other.start()
            other.join(0.3)  # the surface waits for our write lock (it cannot slip in between)
            s.record_transition(TransitionRecord(T0, MachineKind.BOT, "bot", "scanning", "opening", "open"))

        bot.run(write)
        assert [t.trigger for t in bot.list_transitions()] == ["open"]
        other.join(30)  # its busy timeout is 5 s: it ends, written or raising, well within this
        assert not other.is_alive()
        assert surface.get_kv("control_halt") == "manual: test"
    finally:
        if other.is_alive():
            other.join()  # never close a connection another thread is still using
        bot.close()
        surface.close()


@pytest.mark.anyio
async def test_run_inline_writes_before_other_ready_tasks_when_the_database_is_free(db_path: Path) -> None:
    """An entry's intent transaction does not yield to the event loop first (every ready stream
    handler would run ahead of the entry's orders)."""
    store = await AsyncStorage.open(db_path)
    order: list[str] = []
    try:
        async def other() -> None:
            order.append("other task")

        async with anyio.create_task_group() as tg:
            tg.start_soon(other)  # ready to run at the next yield
            await store.run_inline(lambda s: (s.insert_position_with_intents(make_position(), open_intents()),
                                              order.append("intent written")))
        assert order == ["intent written", "other task"]
        assert len(await store.list_orders("pos-1")) == 2
    finally:
        await store.aclose()


@pytest.mark.anyio
async def test_run_inline_waits_while_the_worker_holds_the_database(db_path: Path) -> None:
    store = await AsyncStorage.open(db_path)
    release = threading.Event()
    events: list[str] = []
    try:
        def slow(s: Storage) -> None:
            events.append("worker started")
            release.wait(30)
            events.append("worker done")

        async def inline() -> None:
            await store.run_inline(lambda s: events.append("inline"))

        async with anyio.create_task_group() as tg:
            tg.start_soon(store.run, slow)
            with anyio.fail_after(30):
                while "worker started" not in events:
                    await anyio.sleep(0.005)
            tg.start_soon(inline)
            await anyio.wait_all_tasks_blocked()
            assert events == ["worker started"], "the inline write must wait for the worker's transaction"
            release.set()
        assert events == ["worker started", "worker done", "inline"]
    finally:
        release.set()
        await store.aclose()


@pytest.mark.anyio
async def test_the_running_bots_wal_is_checkpointed_by_a_thread_not_by_its_commits(db_path: Path) -> None:
    """Commits never pay for a checkpoint (the writer only auto-checkpoints as a far safety net);
    the checkpointer thread copies the log into the database file on its own connection."""
    from storage.checkpointer import SAFETY_NET_PAGES

    store = await AsyncStorage.open(db_path)
    try:
        assert store.checkpointer is not None
        store.checkpointer.interval_s = 0.01  # (the thread reads it before each wait)
        assert store.sync.db.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == SAFETY_NET_PAGES > 1000
        await store.insert_position_with_intents(make_position(), open_intents())
        with anyio.fail_after(30):
            while store.checkpointer.frames_copied == 0:
                await anyio.sleep(0.01)
        assert store.checkpointer.failures == 0, store.checkpointer.last_error
    finally:
        await store.aclose()
    assert store.checkpointer._thread is None  # stopped by aclose
    reopened = Storage.open(db_path)
    try:
        assert [o.client_order_id for o in reopened.list_orders("pos-1")]
    finally:
        reopened.close()


def _wal_salts(db_path: Path) -> bytes:
    """The log header's salts (bytes 16-24 of the -wal file): new each time the log starts over."""
    with open(f"{db_path}-wal", "rb") as wal:
        return wal.read(24)[16:24]


@pytest.mark.anyio
async def test_the_log_starts_over_on_the_writer_thread_not_in_the_next_entrys_commit(db_path: Path) -> None:
    """After a checkpoint copied the whole log, the next commit starts the log over and syncs its
    header. The checkpointer has the writer's worker do that at once, so an entry's intent (the
    commit its orders wait for, on the event loop) appends to a log already started over."""
    from storage.repository import WAL_RESTARTS_KEY

    store = await AsyncStorage.open(db_path)
    try:
        assert store.checkpointer is not None
        await store.insert_position_with_intents(make_position("pos-0"), open_intents("pos-0"))
        salts_before = _wal_salts(db_path)
        store.checkpointer.interval_s = 0.01
        with anyio.fail_after(30):
            while await store.run(lambda s: s.get_kv(WAL_RESTARTS_KEY)) is None:
                await anyio.sleep(0.01)
        restarted = _wal_salts(db_path)
        assert restarted != salts_before  # the restart's write started the log over
        checkpoints = store.checkpointer.checkpoints
        await anyio.sleep(0.2)  # quiet: no commit since the restart, so no checkpoint and no restart
        assert store.checkpointer.checkpoints == checkpoints
        assert store.checkpointer.restarts_requested == 1
        opening = TransitionRecord(T0, MachineKind.POSITION, "pos-1", "scanning", "opening", "begin_open")
        await store.journal_entry_intent([opening], make_position(), open_intents())
        assert _wal_salts(db_path) == restarted  # appended: the entry's commit did not start the log over
        with anyio.fail_after(30):  # the entry's row is checkpointed, and the log started over once more
            while store.checkpointer.restarts_requested < 2 or await store.run(
                    lambda s: s.get_kv(WAL_RESTARTS_KEY)) != "2":
                await anyio.sleep(0.01)
        assert store.checkpointer.failures == 0, store.checkpointer.last_error
    finally:
        await store.aclose()


@pytest.mark.anyio
async def test_without_background_checkpoints_the_writer_checkpoints_as_sqlite_does(db_path: Path) -> None:
    store = await AsyncStorage.open(db_path, background_checkpoints=False)
    try:
        assert store.checkpointer is None
        assert store.sync.db.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    finally:
        await store.aclose()


def test_the_checkpointer_never_creates_a_missing_database(tmp_path: Path) -> None:
    from storage.checkpointer import WalCheckpointer

    missing = tmp_path / "gone.sqlite"
    checkpointer = WalCheckpointer(missing, interval_s=0.005)
    checkpointer.start()
    try:
        deadline = threading.Event()
        for _ in range(6000):
            if checkpointer.failures >= 2:
                break
            deadline.wait(0.005)
    finally:
        checkpointer.stop()
    assert checkpointer.failures >= 2 and not missing.exists()


def test_an_entry_intent_is_one_transaction_transitions_first(storage: Storage) -> None:
    opening = TransitionRecord(T0, MachineKind.POSITION, "pos-1", "scanning", "opening", "begin_open")
    storage.insert_entry_intent([opening], make_position(), open_intents())
    assert storage.get_position("pos-1") is not None
    assert len(storage.list_orders("pos-1")) == 2
    assert [(t.source, t.dest) for t in storage.list_transitions(entity_id="pos-1")] == [("scanning", "opening")]
    # A duplicate position id: nothing of the second intent is written (no transition, no order).
    again = TransitionRecord(T0 + 1, MachineKind.POSITION, "pos-1", "scanning", "opening", "again")
    other_orders = [replace(i, request=replace(i.request, client_order_id=i.request.client_order_id + "x"))
                    for i in open_intents()]
    with pytest.raises(sqlite3.IntegrityError):
        storage.insert_entry_intent([again], make_position(), other_orders)
    assert len(storage.list_orders("pos-1")) == 2
    assert [t.trigger for t in storage.list_transitions(entity_id="pos-1")] == ["begin_open"]


def test_a_journalled_entry_left_by_a_kill_is_written_out_at_open(db_path: Path) -> None:
    """An entry's intent journalled (one row, before its orders leave) and the process killed before
    its normal rows were written: the next open writes the same rows an ``insert_entry_intent`` would
    have (the orders may be at the venue: restore must find them), and the journal is empty."""
    opening = TransitionRecord(T0, MachineKind.POSITION, "pos-1", "scanning", "opening", "begin_open",
                               "expected net 1.5", {"expected_net_usd": "1.5"})
    position = make_position(entry_details={"expected_net_usd": "1.5"})
    first = Storage.open(db_path)
    journal_id, _rows = first.journal_entry_intent([opening], position, open_intents())
    assert first.get_position("pos-1") is None and first.list_orders("pos-1") == []  # only the journal row
    assert first.pending_entry_journal() == ["pos-1"]
    first.close()  # the kill: its normal rows were never written

    reference = Storage.open(db_path.parent / "reference.db")
    reference.insert_entry_intent([opening], position, open_intents())
    again = Storage.open(db_path)
    try:
        assert again.pending_entry_journal() == []
        assert again.get_position("pos-1") == reference.get_position("pos-1")
        assert again.list_orders("pos-1") == reference.list_orders("pos-1")
        assert again.list_transitions(entity_id="pos-1") == reference.list_transitions(entity_id="pos-1")
        assert again.settle_entry_journal(journal_id) is False  # written once only
    finally:
        again.close()
        reference.close()


def test_a_journalled_entry_is_settled_once_and_refuses_ids_already_on_record(storage: Storage) -> None:
    opening = TransitionRecord(T0, MachineKind.POSITION, "pos-1", "scanning", "opening", "begin_open")
    journal_id, rows = storage.journal_entry_intent([opening], make_position(), open_intents())
    assert storage.settle_entry_journal(journal_id, rows) is True
    assert storage.settle_entry_journal(journal_id, rows) is False  # never twice (duplicate rows)
    assert storage.pending_entry_journal() == []
    assert len(storage.list_orders("pos-1")) == 2
    # The same position id, or a client order id already on record: refused before anything is sent.
    with pytest.raises(sqlite3.IntegrityError):
        storage.journal_entry_intent([opening], make_position(), [])
    other = make_position("pos-2")
    with pytest.raises(sqlite3.IntegrityError):
        storage.journal_entry_intent([], other, [replace(open_intents()[0], position_id="pos-2")])
    # ... also while an earlier journal row of the same position is not settled yet.
    storage.journal_entry_intent([], other, [])
    with pytest.raises(sqlite3.IntegrityError):
        storage.journal_entry_intent([], other, [])
    assert storage.pending_entry_journal() == ["pos-2"]


def test_details_json_and_iso_text_match_the_plain_encodings_they_shortcut() -> None:
    """``to_json``'s flat-dict path and ``iso_utc``'s per-second text (entry-path shortcuts) give
    exactly what ``json.dumps(..., default, sort_keys)`` and a full ``datetime`` format give."""
    import json
    from datetime import datetime, timezone

    from bot.core.domain import LegSide
    from storage.codec import _json_default, iso_utc, to_json

    details = {"b": "1", "a": Decimal("1.50"), "c": [1, {"x": None}], "e": LegSide.LONG, "n": None, "i": 3,
               "t": True, "s": frozenset({"z"})}
    assert to_json(details) == json.dumps(details, default=_json_default, sort_keys=True, allow_nan=False)
    for bad in ({"a": 1.5}, {"a": Decimal("NaN")}, {"a": {"b": [1.5]}}, [1.5]):
        with pytest.raises(StorageError):
            to_json(bad)  # type: ignore[arg-type]
    for ts_ms in (T0, T0 + 999, T0 + 1000, T0 + 1, 0, T0 - 1, T0 + 86_400_000):
        moment = datetime.fromtimestamp(ts_ms // 1000, tz=timezone.utc)
        assert iso_utc(ts_ms) == f"{moment:%Y-%m-%dT%H:%M:%S}.{ts_ms % 1000:03d}Z"


def test_the_page_cache_of_each_database_connection_is_bounded(tmp_path: Path) -> None:
    # SQLite's default 2 MiB cache per connection fills as the file grows over months (RSS growth in
    # bench/scale_year.py); the bot's and the paper venues' connections use a bounded, smaller one
    from paper.venue_store import VenueStore
    from storage.connection import PAGE_CACHE_KIB

    storage = Storage.open(tmp_path / "bot.sqlite")
    venues = VenueStore.open(tmp_path / "venues.sqlite")
    try:
        assert storage.db.conn.execute("PRAGMA cache_size").fetchone()[0] == -PAGE_CACHE_KIB
        assert venues._conn.execute("PRAGMA cache_size").fetchone()[0] == -PAGE_CACHE_KIB
        assert 0 < PAGE_CACHE_KIB < 2000  # below SQLite's default
    finally:
        storage.close()
        venues.close()
