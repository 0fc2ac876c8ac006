"""The entry-intent write an entry's orders wait for: one journal row vs the normal rows, cold.

    python bench/intent_write.py [--entries 400] [--out bench/results/intent_write.json]

Before a taker-taker entry's orders leave, its intent must be durable in SQLite. The reference is
``Storage.insert_entry_intent`` (the transition, the position row and both order rows, with their
indexes and ``seq`` triggers, one ``BEGIN IMMEDIATE`` transaction); the candidate is
``Storage.journal_entry_intent`` (the same rows, encoded and validated, as ONE journal row in one
transaction; ``settle_entry_journal`` writes the normal rows afterwards, while the orders travel:
timed too, but off the orders' path). Both run in the same process on their own database file of
the same size (files warmed with the same number of earlier entries), in alternating blocks.

A live entry runs cold: between two entries the event loop parses books and runs other tasks, which
evicts the caches. So each timed write here follows an 8 MB memory walk and some unrelated Python
work (not timed). Timings are this thread's CPU time (``time.thread_time``), which a loaded machine
inflates far less than wall time. Prints the JSON (also written to ``--out``), with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.core.domain import LegSide, OrderRequest, OrderSide, OrderType  # noqa: E402
from storage import MachineKind, Storage  # noqa: E402
from storage.records import OrderIntent, OrderPurpose, PositionRecord, TransitionRecord  # noqa: E402

DEFAULT_OUT = ROOT / "bench" / "results" / "intent_write.json"
T0 = 1_700_000_000_000
_JUNK = bytearray(8 * 1024 * 1024)


def entry(i: int, tag: str) -> tuple[list[TransitionRecord], PositionRecord, list[OrderIntent]]:
    """One entry's rows, shaped like a live one (the opportunity as entry details, two IOC limits)."""
    pid = f"{tag}{i:011d}"
    details = {name: Decimal("1234.56789") for name in (
        "long_rate", "short_rate", "spread_hourly", "apr", "costs", "expected_net", "notional_usd",
        "fees_usd", "slippage_usd", "basis_usd", "long_price", "short_price", "size_base")}
    details.update(symbol="BTC", long_venue="binanceusdm", short_venue="bybit", horizon_hours=Decimal(72))
    position = PositionRecord(
        id=pid, symbol="BTC", long_venue="binanceusdm", short_venue="bybit", state="opening",
        target_size_base=Decimal("0.010"), notional_usd=Decimal("500.12"), created_at_ts_ms=T0 + i,
        updated_at_ts_ms=T0 + i, entry_spread_hourly=Decimal("0.00002911"), entry_apr=Decimal("0.255"),
        entry_expected_net_usd=Decimal("-0.0583"), entry_costs_usd=Decimal("2.1536"),
        entry_long_price=Decimal("50010.1"), entry_short_price=Decimal("50000.2"), entry_details=details,
        opened_at_ts_ms=T0 + i)
    transition = TransitionRecord(T0 + i, MachineKind.POSITION, pid, "scanning", "opening", "begin_open",
                                  "expected net -0.0583 USD over 72h", {k: "0.1" for k in "abcdef"})
    intents = [OrderIntent(request=OrderRequest(f"{pid}{leg.value[0]}o0000", venue, "BTC", side, Decimal("0.010"),
                                                OrderType.LIMIT, limit_price=Decimal("50060.0")),
                           purpose=OrderPurpose.OPEN, created_at_ts_ms=T0 + i, position_id=pid, leg=leg, attempt=0)
               for leg, venue, side in ((LegSide.LONG, "binanceusdm", OrderSide.BUY),
                                        (LegSide.SHORT, "bybit", OrderSide.SELL))]
    return [transition], position, intents


def pollute() -> None:
    """Evict the caches as a live event loop does between two entries (not timed)."""
    for j in range(0, len(_JUNK), 64):
        _JUNK[j] = (_JUNK[j] + 1) & 255
    sorted(str(k) * 3 for k in range(3000))


def _summary(values: list[float]) -> dict[str, float | int]:
    ordered = sorted(values)
    return {"n": len(values), "p50": round(statistics.median(values), 4),
            "p99": round(ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))], 4),
            "max": round(ordered[-1], 4)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=400, help="timed entries per variant")
    parser.add_argument("--warm", type=int, default=200, help="earlier entries already in each file")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-intent-"))
    load_before = os.getloadavg()
    stores = {name: Storage.open(work / f"{name}.sqlite") for name in ("normal_rows", "journal_row")}
    for name, store in stores.items():
        for i in range(args.warm):
            store.insert_entry_intent(*entry(i, "w"))
    times: dict[str, list[float]] = {"normal_rows": [], "journal_row": [], "journal_settle_after_send": []}
    block = 20
    i = 0
    while i < args.entries:
        for name in ("normal_rows", "journal_row") if (i // block) % 2 == 0 else ("journal_row", "normal_rows"):
            store = stores[name]
            for k in range(i, min(i + block, args.entries)):
                rows = entry(k, name[0])
                pollute()
                started = time.thread_time()
                if name == "normal_rows":
                    store.insert_entry_intent(*rows)
                else:
                    journal_id, encoded = store.journal_entry_intent(*rows)
                times[name].append((time.thread_time() - started) * 1000)
                if name == "journal_row":
                    started = time.thread_time()
                    store.settle_entry_journal(journal_id, encoded)
                    times["journal_settle_after_send"].append((time.thread_time() - started) * 1000)
        i += block
    for store in stores.values():
        store.close()
    result = {
        "cpu_ms": {name: _summary(values) for name, values in times.items()},
        "ratio_journal_to_normal": {q: round(statistics.quantiles(times["journal_row"], n=100)[49 if q == "p50" else 98]
                                             / statistics.quantiles(times["normal_rows"], n=100)[49 if q == "p50" else 98], 3)
                                    for q in ("p50", "p99")},
        "method": "thread CPU time of the write an entry's orders wait for, each after an 8 MB memory walk "
                  "(cold caches, as between live entries); reference (normal rows) and candidate (journal "
                  "row) on equal files in alternating blocks of 20, same process",
        "entries": args.entries, "warm_entries": args.warm,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(), "cpus": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(json.dumps(result, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
