"""``python -m bot report`` and ``python -m bot postmortem``: read-only views of a bot database.

Numbers are exact Decimals printed as strings in JSON. ``open_exposure`` is read from the
venues' own state (for paper: the paper venues' database), not from the bot's view, so a
position the bot lost track of still shows up there.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.core.clock import iso_utc
from bot.core.domain import ZERO, is_spot, pair_kind
from bot.errors import UserInputError
from bot.settings import Settings
from paper.venue_store import read_open_positions, venue_store_path_for
from storage import Storage
from storage.db_check import BadDatabase, check_bot_database
from storage.instance_lock import running_pid


def resolve_db(args: argparse.Namespace, settings: Settings) -> Path:
    """The database a read command looks at: --db, else the paper (or --live) default."""
    db = getattr(args, "db", None)
    if db is not None:
        return Path(db).expanduser()
    return (settings.bot.live_db_path if getattr(args, "live", False) else settings.bot.paper_db_path).expanduser()


def open_existing(path: Path, *, write: bool = False) -> Storage:
    """Open the bot's database at ``path``: read-only unless ``write``; a foreign or broken file is
    refused (one line naming it) before anything in it changes."""
    path = path.expanduser()
    if not path.exists():
        raise UserInputError(f"no database at {path} (run python -m bot --paper first, or pass --db PATH)")
    try:
        info = check_bot_database(path)
        if info is not None and info.empty:
            raise BadDatabase(f"{path} is an empty file, not a bot database yet (start the bot on it first, "
                              "or pass the bot's database to --db)")
        return Storage.open(path) if write else Storage.open_readonly(path)
    except BadDatabase as exc:
        raise UserInputError(str(exc)) from None
    except sqlite3.Error as exc:
        raise UserInputError(f"cannot use database {path}: {exc}") from None


JOURNALLED = ("entry journalled, its orders possibly sent, not yet written as a position (the bot stopped "
              "right then): start the bot once and it records it and looks its orders up by client id")


def running_line(db: Path) -> str:
    """Whether a bot holds ``db`` now (its instance lock), in words."""
    pid = running_pid(db)
    if pid is None:
        return "not running (this is the last recorded state)"
    return f"running (pid {pid})" if pid else "running"


def build_report(storage: Storage, venue_db: Path) -> dict[str, Any]:
    """Positions with money totals, bot-wide totals, open exposure, breakers and unhedged windows."""
    positions = []
    totals = {"funding_usd": ZERO, "fees_usd": ZERO, "realized_pnl_usd": ZERO}
    for record in storage.list_positions():
        money = storage.position_totals(record.id)
        filled = bool(storage.list_fills(record.id))
        row = {
            # False for an entry that never filled on either venue: listed, never counted as a position.
            "filled": filled,
            "id": record.id,
            "symbol": record.symbol,
            "long_venue": record.long_venue,
            "short_venue": record.short_venue,
            # "spot_perp" (carry: the long leg is a spot market's wallet) or "perp_perp".
            "pair_kind": _pair_kind_text(record.long_venue, record.short_venue),
            "state": record.state,
            "size_base": str(record.target_size_base),
            "opened_at": iso_utc(record.opened_at_ts_ms) if record.opened_at_ts_ms else None,
            "closed_at": iso_utc(record.closed_at_ts_ms) if record.closed_at_ts_ms else None,
            "exit_reason": record.exit_reason,
            "funding_usd": str(money.funding_usd),
            "fees_usd": str(money.fees_usd),
            "price_pnl_usd": None if money.price_pnl_usd is None else str(money.price_pnl_usd),
            "realized_pnl_usd": None if money.realized_pnl_usd is None else str(money.realized_pnl_usd),
        }
        positions.append(row)
        totals["funding_usd"] += money.funding_usd
        totals["fees_usd"] += money.fees_usd
        if money.realized_pnl_usd is not None:
            totals["realized_pnl_usd"] += money.realized_pnl_usd
    exposure: dict[str, dict[str, str]] = {}
    for venue_position in read_open_positions(venue_db):
        size = venue_position.size_base
        if is_spot(venue_position.venue):
            # A spot wallet: only the coins above the bot's recorded baseline are the bot's exposure.
            baseline = storage.get_kv(f"spot_baseline:{venue_position.venue}:{venue_position.symbol}")
            size = ZERO if baseline is None else size - Decimal(baseline)
        if size != 0:
            exposure.setdefault(venue_position.venue, {})[venue_position.symbol] = str(size)
    events = storage.list_events()
    windows = sorted(Decimal(e.details["window_ms"]) for e in events
                     if e.kind == "unhedged_window" and e.details and "window_ms" in e.details)
    breakers: dict[str, dict[str, str]] = {}
    halts = []
    for e in events:
        if e.kind.startswith("breaker_") and e.details:
            breakers[e.details.get("breaker", "?")] = {"state": e.details.get("to", "?"), "since": iso_utc(e.ts_ms),
                                                       "reason": e.message}
        if e.kind in ("halt", "resume", "manual_flatten", "control_halt", "control_resume", "control_flatten"):
            halts.append({"at": iso_utc(e.ts_ms), "kind": e.kind, "reason": e.message})
    state = storage.get_bot_state()
    return {
        "bot_state": state.state if state else None,
        "positions": positions,
        "totals": {
            "positions": sum(1 for p in positions if p["filled"]),
            "failed_entries": sum(1 for p in positions if not p["filled"] and p["state"] == "closed"),
            "open_positions": sum(1 for p in positions if p["state"] != "closed"),
            **{k: str(v) for k, v in totals.items()},
        },
        "open_exposure": exposure,
        "breakers": breakers,
        "halts": halts,
        "unhedged_window_ms": _distribution(windows),
        # entries whose intent is journalled and not yet written as rows: the bot stopped between
        # sending their orders and recording them; its next start writes them and resolves the orders
        "entries_journalled_not_written": storage.pending_entry_journal(),
    }


def _distribution(values: list[Decimal]) -> dict[str, Any]:
    if not values:
        return {"count": 0}
    def pct(p: int) -> str:
        return str(values[min(len(values) - 1, (len(values) * p) // 100)])
    return {"count": len(values), "p50": pct(50), "p99": pct(99), "max": str(values[-1])}


def run_report(args: argparse.Namespace, settings: Settings) -> int:
    db = resolve_db(args, settings)
    storage = open_existing(db)
    try:
        report = build_report(storage, venue_store_path_for(db))
    except sqlite3.Error as exc:
        raise UserInputError(f"cannot read database {db}: {exc}") from None
    finally:
        storage.close()
    pid = running_pid(db)
    report["bot_running"] = pid is not None
    report["bot_pid"] = pid or None
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"bot: {running_line(db)}; recorded state: {report['bot_state']}    database: {db}")
    header = ("id", "symbol", "long", "short", "state", "size", "opened_at", "closed_at", "exit_reason",
              "funding_usd", "fees_usd", "realized_pnl_usd")
    rows = [(p["id"], p["symbol"], p["long_venue"], p["short_venue"], p["state"], p["size_base"],
             (p["opened_at"] or "")[:19], (p["closed_at"] or "")[:19], p["exit_reason"] or "",
             _money(p["funding_usd"]), _money(p["fees_usd"]), _money(p["realized_pnl_usd"]))
            for p in report["positions"]]
    print(_table(header, rows))
    t = report["totals"]
    failed = f", {t['failed_entries']} failed entr{'y' if t['failed_entries'] == 1 else 'ies'} (never filled)" \
        if t["failed_entries"] else ""
    print(f"\ntotals: {t['positions']} positions ({t['open_positions']} open){failed}; funding {_money(t['funding_usd'])} USD, "
          f"fees {_money(t['fees_usd'])} USD, realized PnL {_money(t['realized_pnl_usd'])} USD")
    exposure = report["open_exposure"]
    print("open exposure: " + (json.dumps(exposure) if exposure else "none (flat on every venue)"))
    breakers = {k: v["state"] for k, v in report["breakers"].items()}
    print("breakers: " + (json.dumps(breakers) if breakers else "none ever opened"))
    if report["halts"]:
        print("halts: " + "; ".join(f"{h['at']} {h['kind']}: {h['reason']}" for h in report["halts"]))
    if report["entries_journalled_not_written"]:
        print(f"{JOURNALLED}: {', '.join(report['entries_journalled_not_written'])}")
    w = report["unhedged_window_ms"]
    if w["count"]:
        print(f"unhedged windows: {w['count']} (p50 {w['p50']} ms, p99 {w['p99']} ms, max {w['max']} ms)")
    return 0


def postmortem_doc(storage: Storage, position_id: str) -> dict[str, Any] | None:
    """One position's post-mortem (money and the merged timeline) as JSON-ready data; None if unknown."""
    record = storage.get_position(position_id)
    if record is None:
        return None
    timeline = storage.timeline(position_id)
    money = storage.position_totals(position_id)
    entries = [{"at": iso_utc(row.ts_ms), "kind": row.kind, **_describe(row.kind, row.data)} for row in timeline]
    return {"position_id": record.id, "symbol": record.symbol, "long_venue": record.long_venue,
            "short_venue": record.short_venue, "state": record.state,
            "exit_reason": record.exit_reason, "funding_usd": str(money.funding_usd),
            "fees_usd": str(money.fees_usd),
            "realized_pnl_usd": None if money.realized_pnl_usd is None else str(money.realized_pnl_usd),
            "timeline": entries}


def run_postmortem(args: argparse.Namespace, settings: Settings) -> int:
    db = resolve_db(args, settings)
    storage = open_existing(db)
    try:
        doc = postmortem_doc(storage, args.position_id)
        journalled = storage.pending_entry_journal() if doc is None else []
    except sqlite3.Error as exc:
        raise UserInputError(f"cannot read database {db}: {exc}") from None
    finally:
        storage.close()
    if doc is None and args.position_id in journalled:
        raise UserInputError(f"position {args.position_id!r}: {JOURNALLED}")
    if doc is None:
        raise UserInputError(f"no position {args.position_id!r} in {db} (python -m bot report lists them)")
    if args.json:
        print(json.dumps(doc, indent=2, default=str))
        return 0
    print(f"position {doc['position_id']}: {doc['symbol']} long {doc['long_venue']} / short {doc['short_venue']}; "
          f"state {doc['state']}; exit reason {doc['exit_reason'] or '-'}")
    for entry in doc["timeline"]:
        print(f"{entry['at']}  {entry['kind']:<10} {entry['summary']}")
    print(f"funding {_money(doc['funding_usd'])} USD, fees {_money(doc['fees_usd'])} USD, realized PnL "
          f"{_money(doc['realized_pnl_usd'])} USD")
    return 0


def _pair_kind_text(long_venue: str, short_venue: str) -> str:
    kind = pair_kind(long_venue, short_venue)
    return kind.value if kind is not None else "invalid"


def _describe(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    if kind == "transition":
        summary = f"{data['source']} -> {data['dest']} [{data['trigger']}] {data.get('reason') or ''}"
    elif kind == "order":
        summary = (f"{data['purpose']} {data.get('leg') or ''} {data['side']} {data['size_base']} {data['symbol']} on "
                   f"{data['venue']} ({data['order_type']}{' reduce-only' if data.get('reduce_only') else ''}) "
                   f"-> {data['status']}, {data.get('filled_base')} of {data['size_base']} filled "
                   f"cid {data['client_order_id']}")
    elif kind == "fill":
        fee_base = Decimal(data.get("fee_base") or "0")
        in_coin = f" (taken as {fee_base} {data['symbol']}: received {Decimal(data['size_base']) - fee_base})" \
            if fee_base else ""
        summary = (f"{data['side']} {data['size_base']} @ {data['price']} on {data['venue']} fee {data['fee_usd']}"
                   f"{in_coin} trade {data['trade_id']}")
    elif kind == "funding":
        summary = (f"{data['venue']} rate {data['rate']} on {data['position_size_base']} -> {data['amount_usd']} USD")
    else:
        summary = f"{data.get('kind', '')}: {data.get('message', '')}"
    return {"summary": summary.strip(), "data": data}


def _money(text: str | None) -> str:
    return "-" if text is None else f"{Decimal(text):.4f}"


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    cells = [tuple(str(c) for c in header)] + [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
