"""Audit a ``--live`` bot database against the local venue emulator's OWN records.

The emulator keeps its venue state in a ``paper.venue_store`` file, but under the venues' wire ids:
client order ids as each venue's codec sent them (Hyperliquid ``cloid`` hex, adapters/client_ids.py),
Hyperliquid trade ids as its numeric ``tid``, funding payments under each dialect's payment id.
``translated_venue_copy`` takes a consistent copy of that file (SQLite backup: the emulator may be
running) and rewrites those ids to the bot's forms, so the paper audit (tests/engine_harness.py
``audit_files``) checks the same money-safety invariants on the live path: every venue order one
the bot persisted first, none filled beyond its size, no exposure that no open position owns,
closed positions flat, legs equal to the venue, no client id used twice.

Used by tests/test_live_torture.py, tests/test_e2e_live_funding.py and bench/live_torture.py.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from adapters.client_ids import codec_for
from paper.emulator.core import venue_order_number


def wire_trade_id(venue: str, trade_id: str) -> str:
    """The trade id the venue publishes for the emulator's fill ``trade_id`` (what the bot records)."""
    if venue == "hyperliquid":
        return str(500_000_000 + venue_order_number(trade_id))
    if venue in ("binanceusdm", "okx"):
        return str(venue_order_number(trade_id))
    return trade_id


def wire_payment_id(venue: str, payment_id: str) -> str:
    """The funding payment id the venue publishes for the emulator's payment ``payment_id``.

    Binance USD-M's ``tranId`` is derived with Python's ``hash`` in the emulator's process: call this
    in that process (the bench and tests run the emulator in-process)."""
    if venue == "bybit":
        return f"funding-{payment_id}"
    if venue == "hyperliquid":
        from paper.emulator.hyperliquid import _hash

        return _hash("funding", payment_id)
    if venue == "binanceusdm":
        return str(abs(hash(payment_id)) % 10**12)
    if venue == "okx":  # billId = settlement ms * 100 + the symbol's index (an emulator on its default symbols)
        from paper.emulator.core import DEFAULT_SYMBOLS

        _venue, symbol, ts_ms = payment_id.split(":")
        return str(int(ts_ms) * 100 + DEFAULT_SYMBOLS.index(symbol))
    return payment_id


def _copy(src: Path, dst: Path) -> None:
    """A consistent copy of a SQLite file that another process or thread may be writing."""
    dst.unlink(missing_ok=True)
    source = sqlite3.connect(f"{src.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    target = sqlite3.connect(dst)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()


def translated_venue_copy(bot_db: Path, venue_state: Path, out: Path) -> Path:
    """Copy ``venue_state`` (the emulator's file) to ``out`` with wire ids rewritten to the bot's."""
    _copy(venue_state, out)
    bot = sqlite3.connect(f"{bot_db.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        ours = bot.execute("SELECT client_order_id, venue FROM orders").fetchall()
    except sqlite3.Error:  # killed before its schema was written: no order at all
        ours = []
    finally:
        bot.close()
    conn = sqlite3.connect(out)
    try:
        with conn:
            for cid, venue in ours:
                wire = str(codec_for(venue).encode(cid))
                if wire == cid:
                    continue
                conn.execute("UPDATE venue_orders SET client_order_id = ? WHERE venue = ? AND client_order_id = ?",
                             (cid, venue, wire))
                conn.execute("UPDATE venue_fills SET client_order_id = ? WHERE venue = ? AND client_order_id = ?",
                             (cid, venue, wire))
            for venue, trade_id in conn.execute("SELECT venue, trade_id FROM venue_fills").fetchall():
                wire = wire_trade_id(venue, trade_id)
                if wire != trade_id:
                    conn.execute("UPDATE venue_fills SET trade_id = ? WHERE venue = ? AND trade_id = ?",
                                 (wire, venue, trade_id))
            for venue, pid in conn.execute("SELECT venue, payment_id FROM venue_funding").fetchall():
                conn.execute("UPDATE venue_funding SET payment_id = ? WHERE payment_id = ?",
                             (wire_payment_id(venue, pid), pid))
    finally:
        conn.close()
    return out


@dataclass
class LiveAudit:
    """The paper audit's facts plus the live-only ones."""

    audit: object  # tests.engine_harness.FileAudit
    venue_positions: dict[tuple[str, str], Decimal]  # the emulator's non-zero positions
    unknown_positions: list[str]  # emulator exposure on a (venue, symbol) no bot order ever touched
    fills_mismatch: list[str]  # bot fills that differ from the venue's (by trade id), or venue fills missing
    funding_mismatch: list[str]  # bot funding payments that differ from the venue's (by payment id)
    bot_fills: int
    venue_fills: int
    bot_funding: int
    venue_funding: int

    @property
    def problems(self) -> dict[str, list]:
        out = dict(self.audit.problems)  # type: ignore[attr-defined]
        for name in ("unknown_positions", "fills_mismatch", "funding_mismatch"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        return out


def audit_live(bot_db: Path, venue_state: Path, workdir: Path, *, final: bool) -> LiveAudit:
    """Audit ``bot_db`` against the emulator file ``venue_state``.

    ``final``: the bot has stopped after its own recovery (every venue fill of its orders must be in
    its database by then); otherwise (just after a SIGKILL) fills may still be unrecorded and only
    the invariants that hold at EVERY instant are reported by the caller."""
    from engine_harness import audit_files

    workdir.mkdir(parents=True, exist_ok=True)
    bot_copy = workdir / "audit.bot.sqlite"
    _copy(bot_db, bot_copy)
    venue_copy = translated_venue_copy(bot_copy, venue_state, workdir / "audit.venues.sqlite")
    audit = audit_files(bot_copy, venue_path=venue_copy)
    bot = sqlite3.connect(bot_copy)
    ven = sqlite3.connect(venue_copy)
    try:
        touched = {(v, s) for v, s in bot.execute("SELECT DISTINCT venue, symbol FROM orders")}
        venue_positions = {(v, s): Decimal(z) for v, s, z in ven.execute(
            "SELECT venue, symbol, size_base FROM venue_positions") if Decimal(z) != 0}
        unknown_positions = [f"{k}: {z}" for k, z in venue_positions.items() if k not in touched]
        ours = {(v, t): (Decimal(z), Decimal(p)) for v, t, z, p in bot.execute(
            "SELECT venue, trade_id, size_base, price FROM fills")}
        theirs = {(v, t): (Decimal(z), Decimal(p)) for v, t, z, p in ven.execute(
            "SELECT venue, trade_id, size_base, price FROM venue_fills")}
        fills_mismatch = [f"{k}: bot {ours[k]}, venue {theirs.get(k)}" for k in ours if ours[k] != theirs.get(k)]
        if final:
            fills_mismatch += [f"{k}: venue fill {v} never recorded" for k, v in theirs.items() if k not in ours]
        our_funding = {(v, p): Decimal(a) for v, p, a in bot.execute(
            "SELECT venue, payment_id, amount_usd FROM funding_payments")}
        their_funding = {(v, p): Decimal(a) for v, p, a in ven.execute(
            "SELECT venue, payment_id, amount_usd FROM venue_funding")}
        funding_mismatch = [f"{k}: bot {a}, venue {their_funding.get(k)}" for k, a in our_funding.items()
                            if their_funding.get(k) != a]
    finally:
        bot.close()
        ven.close()
    return LiveAudit(audit, venue_positions, unknown_positions, fills_mismatch, funding_mismatch,
                     len(ours), len(theirs), len(our_funding), len(their_funding))
