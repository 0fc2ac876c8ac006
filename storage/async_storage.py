"""Coroutine facade over ``Storage``: every call runs on a worker thread, one at a time.

The single ``anyio.CapacityLimiter(1)`` makes the worker the database's only user, so the one
sqlite3 connection is never touched concurrently and writes never contend. A cancelled caller
still waits for its in-flight call to finish (anyio's default), so a write is never abandoned
half-way. To make several calls one transaction, pass a function to ``run``.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from bot.core.domain import Fill, FundingPayment, LegSide, OrderReport, OrderStatus
from storage.records import (
    TERMINAL_POSITION_STATES,
    BotStateRow,
    EventRecord,
    MachineKind,
    OrderIntent,
    OrderRow,
    PositionRecord,
    PositionTotals,
    TimelineRow,
    TransitionRecord,
)
from storage.checkpointer import SAFETY_NET_PAGES, WalCheckpointer
from storage.errors import StorageError
from storage.repository import Storage

T = TypeVar("T")


class AsyncStorage:
    """The same repository API as ``Storage``, as coroutines, serialized on one thread."""

    def __init__(self, storage: Storage, checkpointer: WalCheckpointer | None = None) -> None:
        self._storage = storage
        self._limiter = anyio.CapacityLimiter(1)
        self.checkpointer = checkpointer
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wal_restarts: set[asyncio.Task] = set()

    @classmethod
    async def open(cls, path: Path, *, background_checkpoints: bool = True) -> "AsyncStorage":
        """Open (creating/migrating) the database at ``path`` off the event loop.

        With ``background_checkpoints`` (the default) the WAL is checkpointed by a thread of its
        own (``storage.checkpointer``), never inside one of this connection's commits."""
        def open_storage() -> Storage:
            storage = Storage.open(path)
            if background_checkpoints:
                storage.db.conn.execute(f"PRAGMA wal_autocheckpoint = {SAFETY_NET_PAGES}")
            return storage

        storage = await anyio.to_thread.run_sync(open_storage)
        if not background_checkpoints:
            return cls(storage)
        store = cls(storage, WalCheckpointer(path))
        store._loop = asyncio.get_running_loop()
        store.checkpointer.restart_wal = store._request_wal_restart  # type: ignore[union-attr]
        store.checkpointer.start()  # type: ignore[union-attr]
        return store

    def _request_wal_restart(self, done: threading.Event) -> None:
        """(checkpointer thread) Have the writer start the log over, on its worker thread."""
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(self._start_wal_restart, done)
        except RuntimeError:  # the event loop is closed: nothing more is written
            done.set()

    def _start_wal_restart(self, done: threading.Event) -> None:
        assert self._loop is not None
        task = self._loop.create_task(self._restart_wal(done))
        self._wal_restarts.add(task)
        task.add_done_callback(self._wal_restarts.discard)

    async def _restart_wal(self, done: threading.Event) -> None:
        try:
            await self._call(self._storage.restart_wal, time.time_ns() // 1_000_000)
        except (sqlite3.Error, StorageError) as exc:
            assert self.checkpointer is not None
            self.checkpointer.note_failure(exc)
        finally:
            done.set()

    @property
    def sync(self) -> Storage:
        """The wrapped synchronous Storage (only for use from inside ``run``)."""
        return self._storage

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await anyio.to_thread.run_sync(
            functools.partial(fn, *args, **kwargs), limiter=self._limiter
        )

    async def run(self, fn: Callable[[Storage], T]) -> T:
        """Run ``fn(storage)`` on the writer thread inside ONE transaction."""
        return await self._call(self._storage.run, fn)

    async def run_inline(self, fn: Callable[[Storage], T]) -> T:
        """``run`` on the calling (event-loop) thread, under the same one-user limiter: for the few
        small, latency-critical writes (an entry's intent before its orders leave) where the
        hand-over to the worker thread and back costs more than the write itself. The loop is
        blocked for the transaction's duration; never use it for large writes.

        When the database is free the call does not yield to the event loop before writing (a
        yield would let every ready stream handler run first); when the worker holds it, it
        waits its turn like any other call."""
        return await self._inline(self._storage.run, fn)

    async def insert_entry_intent(self, transitions: Sequence[TransitionRecord], position: PositionRecord,
                                  intents: Sequence[OrderIntent]) -> None:
        """``Storage.insert_entry_intent`` inline (as ``run_inline``): an entry's transitions,
        position row and order intents, one transaction, before its orders leave."""
        await self._inline(self._storage.insert_entry_intent, transitions, position, intents)

    async def journal_entry_intent(self, transitions: Sequence[TransitionRecord], position: PositionRecord,
                                   intents: Sequence[OrderIntent]) -> tuple[int, list[tuple[str, list[dict[str, Any]]]]]:
        """``Storage.journal_entry_intent`` inline: an entry's intent as one journal row, committed
        before its orders leave (settle it with ``settle_entry_journal`` once they are away)."""
        return await self._inline(self._storage.journal_entry_intent, transitions, position, intents)

    async def settle_entry_journal(self, journal_id: int,
                                   tables: Sequence[tuple[str, Sequence[dict[str, Any]]]] | None = None) -> bool:
        """``Storage.settle_entry_journal`` inline: the journalled entry's normal rows, written while
        its orders travel and before any answer about them is recorded."""
        return await self._inline(self._storage.settle_entry_journal, journal_id, tables)

    async def _inline(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            self._limiter.acquire_nowait()
        except anyio.WouldBlock:
            await self._limiter.acquire()
        try:
            return fn(*args)
        finally:
            self._limiter.release()

    async def aclose(self) -> None:
        if self.checkpointer is not None:
            await anyio.to_thread.run_sync(self.checkpointer.stop)
        for task in list(self._wal_restarts):  # a restart asked for before the stop: written first
            await task
        await self._call(self._storage.close)

    # positions
    async def insert_position(self, position: PositionRecord) -> None:
        await self._call(self._storage.insert_position, position)

    async def upsert_position(self, position: PositionRecord) -> None:
        await self._call(self._storage.upsert_position, position)

    async def insert_position_with_intents(
        self, position: PositionRecord, intents: Sequence[OrderIntent]
    ) -> None:
        await self._call(self._storage.insert_position_with_intents, position, intents)

    async def update_position(
        self, position_id: str, updated_at_ts_ms: int, **changes: Any
    ) -> PositionRecord:
        return await self._call(
            self._storage.update_position, position_id, updated_at_ts_ms, **changes
        )

    async def release_spot_dust(self, position_id: str, updated_at_ts_ms: int, **fields: Any) -> Decimal:
        return await self._call(self._storage.release_spot_dust, position_id, updated_at_ts_ms, **fields)

    async def update_position_with_transitions(
        self,
        position_id: str,
        updated_at_ts_ms: int,
        transitions: Sequence[TransitionRecord],
        **changes: Any,
    ) -> PositionRecord:
        return await self._call(
            self._storage.update_position_with_transitions,
            position_id,
            updated_at_ts_ms,
            transitions,
            **changes,
        )

    async def get_position(self, position_id: str) -> PositionRecord | None:
        return await self._call(self._storage.get_position, position_id)

    async def load_open_positions(
        self, terminal_states: Iterable[str] = TERMINAL_POSITION_STATES
    ) -> list[PositionRecord]:
        return await self._call(self._storage.load_open_positions, terminal_states)

    async def list_positions(
        self, states: Iterable[str] | None = None, symbol: str | None = None
    ) -> list[PositionRecord]:
        return await self._call(self._storage.list_positions, states, symbol)

    # orders
    async def insert_order_intent(self, intent: OrderIntent) -> None:
        await self._call(self._storage.insert_order_intent, intent)

    async def insert_order_intents(self, intents: Sequence[OrderIntent]) -> None:
        await self._call(self._storage.insert_order_intents, intents)

    async def update_order_status(
        self,
        client_order_id: str,
        status: OrderStatus,
        ts_ms: int,
        *,
        filled_base: Decimal | None = None,
        avg_price: Decimal | None = None,
        venue_order_id: str | None = None,
        reason: str | None = None,
    ) -> bool:
        return await self._call(
            self._storage.update_order_status,
            client_order_id,
            status,
            ts_ms,
            filled_base=filled_base,
            avg_price=avg_price,
            venue_order_id=venue_order_id,
            reason=reason,
        )

    async def apply_order_report(self, report: OrderReport, ts_ms: int) -> int:
        return await self._call(self._storage.apply_order_report, report, ts_ms)

    async def get_order(self, client_order_id: str) -> OrderRow | None:
        return await self._call(self._storage.get_order, client_order_id)

    async def list_orders(self, position_id: str) -> list[OrderRow]:
        return await self._call(self._storage.list_orders, position_id)

    async def load_unfinished_orders(self) -> list[OrderRow]:
        return await self._call(self._storage.load_unfinished_orders)

    # fills and funding
    async def record_fill(self, fill: Fill) -> bool:
        return await self._call(self._storage.record_fill, fill)

    async def record_fills(self, fills: Iterable[Fill]) -> int:
        return await self._call(self._storage.record_fills, list(fills))

    async def list_fills(self, position_id: str) -> list[Fill]:
        return await self._call(self._storage.list_fills, position_id)

    async def latest_fill_ts_ms(self, venue: str) -> int | None:
        return await self._call(self._storage.latest_fill_ts_ms, venue)

    async def record_funding_payment(
        self, payment: FundingPayment, position_id: str | None, leg: LegSide | None
    ) -> bool:
        return await self._call(self._storage.record_funding_payment, payment, position_id, leg)

    async def list_funding_payments(self, position_id: str) -> list[FundingPayment]:
        return await self._call(self._storage.list_funding_payments, position_id)

    async def position_holding_at(self, venue: str, symbol: str, ts_ms: int,
                                  clock_slack_ms: int = 0) -> tuple[str, LegSide] | None:
        return await self._call(self._storage.position_holding_at, venue, symbol, ts_ms, clock_slack_ms)

    async def latest_funding_ts_ms(self, venue: str) -> int | None:
        return await self._call(self._storage.latest_funding_ts_ms, venue)

    async def latest_funding_ts_by_venue(self, venues: Sequence[str]) -> dict[str, int | None]:
        return await self._call(self._storage.latest_funding_ts_by_venue, list(venues))

    # transitions and events
    async def record_transition(self, transition: TransitionRecord) -> None:
        await self._call(self._storage.record_transition, transition)

    async def record_transitions(self, transitions: Sequence[TransitionRecord]) -> None:
        await self._call(self._storage.record_transitions, transitions)

    async def list_transitions(
        self, machine: MachineKind | None = None, entity_id: str | None = None
    ) -> list[TransitionRecord]:
        return await self._call(self._storage.list_transitions, machine, entity_id)

    async def record_event(self, event: EventRecord) -> int:
        return await self._call(self._storage.record_event, event)

    async def record_events(self, events: Sequence[EventRecord]) -> None:
        await self._call(self._storage.record_events, events)

    async def list_events(
        self,
        kind: str | None = None,
        entity_id: str | None = None,
        since_ts_ms: int | None = None,
    ) -> list[EventRecord]:
        return await self._call(self._storage.list_events, kind, entity_id, since_ts_ms)

    # bot state and kv
    async def set_bot_state(self, state: str, ts_ms: int) -> None:
        await self._call(self._storage.set_bot_state, state, ts_ms)

    async def get_bot_state(self) -> BotStateRow | None:
        return await self._call(self._storage.get_bot_state)

    async def set_kv(self, key: str, value: str, ts_ms: int) -> None:
        await self._call(self._storage.set_kv, key, value, ts_ms)

    async def get_kv(self, key: str) -> str | None:
        return await self._call(self._storage.get_kv, key)

    async def kv_with_prefix(self, prefix: str) -> dict[str, str]:
        return await self._call(self._storage.kv_with_prefix, prefix)

    async def set_decimal(self, key: str, value: Decimal, ts_ms: int) -> None:
        await self._call(self._storage.set_decimal, key, value, ts_ms)

    async def get_decimal(self, key: str) -> Decimal | None:
        return await self._call(self._storage.get_decimal, key)

    # post-mortems
    async def timeline(self, position_id: str) -> list[TimelineRow]:
        return await self._call(self._storage.timeline, position_id)

    async def position_totals(self, position_id: str) -> PositionTotals:
        return await self._call(self._storage.position_totals, position_id)
