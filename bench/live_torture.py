"""Crash/fault torture on the LIVE path: ``python -m bot --live`` against the local venue emulator.

    python bench/live_torture.py [--kills 12] [--seed 1] [--venues bybit,hyperliquid] [--json]
                                 [--workdir DIR] [--out bench/results/live_torture.json]
    python bench/torture.py --live ...   (the same)

The emulator (paper/emulator, real Bybit v5 / Hyperliquid / Binance USD-M wire protocols, its own
durable venue state) runs in this process for the whole torture; the bot runs as a subprocess with
test keys in its environment, settings that enter at once and exit after ~2 s of holding, and is
SIGKILLed at seeded random moments, then restarted on the same database:

- ``kill`` rounds: SIGKILL a seeded 0.2-4 wall seconds after the lifetime's start-up event (some
  before it: during the start-up reconciliation);
- one ``fault`` round per emulator fault (paper/emulator/faults.py): armed just after start-up
  (the next orders are entries) or once a position is held (the next orders are exits, alternating
  by round), then SIGKILL a seeded 1-6 s later (timeouts: 3-14 s, past the clients' 10 s timeout).
  HTTP faults hit order placement; the stream faults (disconnect, silent, sequence gap), clock skew
  and an interval change act at once; ``absurd_book`` makes every venue publish its books at 1000x
  the price for 6-8 s while a held position's exit comes due.

After EVERY kill the bot's database is audited against the emulator's own records (tests/live_audit.py):
no venue order the bot did not persist first, no client id twice, nothing filled beyond its size,
no venue exposure that no open position of the bot owns, no closed position left unflat, no venue
position on a venue/symbol the bot never ordered. After the last kill the bot runs once more with
``--duration`` (start-up recovery, then SIGTERM-style graceful stop: flatten), must exit 0, and the
final audit adds: the emulator flat, every venue fill recorded by trade id with the venue's size and
price, every funding payment equal by payment id, no order the bot sent priced away from the emulator's
true book (absurd data never traded).

Output: one JSON object (``--json``; always written to ``--out``): rounds, kills, faults injected
(and how many of them fired), exit codes, orphan_legs, duplicate_orders, lost_positions, the per-kill
invariant violations, the final audit's problems, restart (spawn -> start-up event) times. Exit 0
when every invariant held.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from live_audit import audit_live  # noqa: E402

from bot.settings import load_settings  # noqa: E402

DEFAULT_OUT = ROOT / "bench" / "results" / "live_torture.json"
POLL_S = 0.05
# (kind, params) of every emulator fault, in the order the fault rounds use them.
FAULTS: tuple[tuple[str, dict], ...] = (
    ("drop_after_execute", {}),
    ("timeout", {"delay_s": 12, "execute": True}),
    ("http_5xx", {}),
    ("non_json_200", {}),
    ("duplicate_client_id", {}),
    ("rate_limit", {}),
    ("ws_disconnect", {}),
    ("ws_silent", {"duration_s": 5}),
    ("ws_sequence_gap", {}),
    ("clock_skew", {"offset_ms": 20_000}),
    ("interval_change", {"symbol": "BTC", "hours": 4}),
    ("absurd_book", {"factor": 1000}),
)
ORDER_FAULTS = ("drop_after_execute", "timeout", "http_5xx", "non_json_200", "duplicate_client_id", "rate_limit")

SETTINGS = """\
[bot]
log_path = "{work}/bot.log.jsonl"
status_interval_seconds = 60.0

[live]
venues = {venues}
symbols = ["BTC", "ETH"]
busy_poll = {busy_poll}

[forecast]
mode = "persistent"

[strategy]
min_expected_net_usd = "-1000"
horizon_hours = "72"
max_positions = 2
loop_interval_seconds = 1

[risk]
max_breakeven_hours = "1000000"

[exit]
min_hold_hours = "0"
max_hold_hours = "0.0005"

[reconcile]
interval_seconds = 1

[shutdown]
deadline_seconds = 60
{venue_sections}"""

# The invariants that hold at every instant, so also just after a SIGKILL.
INSTANT_PROBLEMS = ("duplicate_client_ids", "overfilled_orders", "unknown_venue_orders", "duplicate_open_legs",
                    "unowned_exposure", "closed_not_flat", "unknown_positions")


def write_settings(workdir: Path, venues: list[str], base_urls: dict[str, str], busy_poll: bool = False) -> Path:
    sections = "".join(f'\n[venues.{v}]\nbase_url = "{base_urls[v]}"\n' for v in venues)
    path = workdir / "live.toml"
    path.write_text(SETTINGS.format(work=workdir.as_posix(), venues=json.dumps(venues), venue_sections=sections,
                                    busy_poll=json.dumps(busy_poll)))
    return path


def keys_env(emu) -> dict[str, str]:
    """The emulator's test keys under each venue's documented variable names (adapters/credentials.py)."""
    names = {"bybit": ("BYBIT_API_KEY", "BYBIT_API_SECRET"),
             "binanceusdm": ("BINANCEUSDM_API_KEY", "BINANCEUSDM_API_SECRET"),
             "hyperliquid": ("HYPERLIQUID_WALLET_ADDRESS", "HYPERLIQUID_PRIVATE_KEY"),
             "okx": ("OKX_API_KEY", "OKX_API_SECRET")}
    env = {}
    for venue, cred in emu.credentials.items():
        key_var, secret_var = names[venue]
        env[key_var], env[secret_var] = cred.key, cred.secret
        if venue == "okx":
            env["OKX_API_PASSPHRASE"] = cred.passphrase
    return env


def _query(db: Path, sql: str) -> list[tuple]:
    if not db.exists():
        return []
    try:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=1)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()
    except sqlite3.Error:  # being created, or its schema not written yet
        return []


def startups(db: Path) -> int:
    return len(_query(db, "SELECT 1 FROM events WHERE kind = 'startup'"))


def held_positions(db: Path) -> int:
    return len(_query(db, "SELECT 1 FROM positions WHERE state = 'monitoring'"))


def spawn_bot(db: Path, settings: Path, workdir: Path, n: int, env: dict[str, str],
              duration_s: float | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "bot", "--live", "--db", str(db), "--settings", str(settings)]
    if duration_s is not None:
        cmd += ["--duration", str(duration_s)]
    full = {**os.environ, **env, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = open(workdir / f"run{n:03d}.out", "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(cmd, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, env=full)


def wait_for(predicate, timeout_s: float, proc: subprocess.Popen | None = None) -> bool:
    """Poll ``predicate`` until true (True), the timeout passes or ``proc`` exits (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        if proc is not None and proc.poll() is not None:
            return predicate()
        time.sleep(POLL_S)
    return False


@dataclass
class Round:
    n: int
    kind: str  # kill | fault | graceful
    fault: str | None = None
    phase: str | None = None  # entry | exit (fault rounds)
    exit_code: int | None = None
    restart_s: float | None = None  # spawn -> start-up event visible
    killed_before_startup: bool = False
    fault_fired: int = 0
    held_at_kill: int = 0
    violations: dict[str, list] = field(default_factory=dict)


def arm(emu, kind: str, params: dict, venue: str) -> None:
    if kind == "absurd_book":  # every venue's feed: whichever leg the bot prices next is absurd
        emu.faults.arm(kind, **params)
        return
    if kind == "interval_change":
        emu.faults.arm(kind, venue=venue, **params)
        return
    count = 3 if kind in ORDER_FAULTS else 1
    emu.faults.arm(kind, venue=venue, count=count, **params)


def disarm(emu) -> None:
    """End every fault before the next lifetime (a skewed clock would refuse its start-up)."""
    emu.faults.clear()
    for venue in emu.core.venues:
        emu.faults.arm("clock_skew", venue=venue, offset_ms=0)
    emu.faults.arm("absurd_book", factor=1)


def fired_count(emu, kind: str, before: int) -> int:
    return sum(1 for f in emu.faults.fired[before:] if f["kind"] == kind)


def run_round(emu, rnd: Round, db: Path, settings: Path, workdir: Path, env: dict[str, str], rng: random.Random,
              venues: list[str], startup_timeout_s: float = 120.0, until_fired_s: float | None = None) -> None:
    """One lifetime, ended by SIGKILL. ``until_fired_s``: a fault round first waits up to this long for
    its fault to fire (tests: the fault is certainly exercised), then the seeded hold."""
    seen = startups(db)
    spawned = time.monotonic()
    proc = spawn_bot(db, settings, workdir, rnd.n, env)
    try:
        if rnd.kind == "kill" and rng.random() < 0.2:  # during start-up: imports, markets, reconciliation
            time.sleep(rng.uniform(1.0, 4.0))
            rnd.killed_before_startup = startups(db) == seen
        else:
            if not wait_for(lambda: startups(db) > seen, startup_timeout_s, proc):
                rnd.killed_before_startup = True
            else:
                rnd.restart_s = round(time.monotonic() - spawned, 3)
            if rnd.kind == "fault":
                assert rnd.fault is not None
                kind, params = next((k, p) for k, p in FAULTS if k == rnd.fault)
                if rnd.phase == "exit":
                    wait_for(lambda: held_positions(db) > 0, 30.0, proc)
                before = len(emu.faults.fired)
                arm(emu, kind, params, venues[rnd.n % len(venues)])
                if until_fired_s is not None:
                    wait_for(lambda: fired_count(emu, kind, before) > 0, until_fired_s, proc)
                hold = rng.uniform(3.0, 14.0) if kind == "timeout" else rng.uniform(1.0, 6.0)
                if kind == "absurd_book":  # long enough for the held position's max-hold exit to come due
                    hold = rng.uniform(6.0, 8.0)
                wait_for(lambda: proc.poll() is not None, hold)
                rnd.fault_fired = fired_count(emu, kind, before)
            else:
                wait_for(lambda: proc.poll() is not None, rng.uniform(0.2, 4.0))
        rnd.held_at_kill = held_positions(db)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        rnd.exit_code = proc.wait()
    if _query(db, "SELECT 1 FROM sqlite_master WHERE name = 'orders'"):  # its schema was written
        audit = audit_live(db, emu.core.store.path, workdir / "audit", final=False)
        rnd.violations = {k: v for k, v in audit.problems.items() if k in INSTANT_PROBLEMS}
    disarm(emu)


def graceful_round(emu, rnd: Round, db: Path, settings: Path, workdir: Path, env: dict[str, str],
                   duration_s: float = 20.0) -> None:
    seen = startups(db)
    spawned = time.monotonic()
    proc = spawn_bot(db, settings, workdir, rnd.n, env, duration_s=duration_s)
    try:
        if wait_for(lambda: startups(db) > seen, 120.0, proc):
            rnd.restart_s = round(time.monotonic() - spawned, 3)
        rnd.exit_code = proc.wait(timeout=duration_s + 180)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        rnd.exit_code = proc.wait()


def absurd_orders(emu, db: Path) -> list[str]:
    """Bot orders priced from absurd data: a limit price outside 0.5x-2x the emulator's TRUE mid now
    (the market drifts far less than that in a torture run; the absurd_book fault publishes 1000x).
    Read from the bot's database AND from the orders the emulator received: a market order has no
    limit in the bot's database, the executor bounds it with the book it reads itself."""
    out = []
    mids: dict[tuple[str, str], Decimal] = {}
    rows = [(cid, venue, symbol, limit) for cid, venue, symbol, limit
            in _query(db, "SELECT client_order_id, venue, symbol, limit_price FROM orders")]
    for venue in emu.core.venues:
        received = emu.call(lambda v=venue: emu.core.executor.orders(v))
        rows += [(f"venue:{o.client_order_id}", venue, o.symbol, o.limit_price) for o in received]
    for cid, venue, symbol, limit in rows:
        if limit is None:
            continue
        if (venue, symbol) not in mids:
            book = emu.call(lambda v=venue, s=symbol: emu.core.true_book(v, s))
            mids[(venue, symbol)] = (book.bids[0].price + book.asks[0].price) / 2
        mid = mids[(venue, symbol)]
        if not mid / 2 <= Decimal(limit) <= mid * 2:
            out.append(f"{cid} {venue} {symbol} limit {limit} (true mid {mid})")
    return out


def torture(workdir: Path, *, kills: int, seed: int, venues: list[str], faults: bool = True,
            fault_kinds: tuple[str, ...] | None = None, market_seed: int = 3,
            until_fired_s: float | None = None, busy_poll: bool = False) -> dict:
    """Run the rounds and return the summary (see the module docstring). ``busy_poll``: the bot's
    ``live.busy_poll`` (with it, idle-time order rehearsals: ``live.rehearse_orders``)."""
    from paper.emulator import start_emulator

    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "live.sqlite"
    rng = random.Random(seed)
    kinds = [k for k, _ in FAULTS if fault_kinds is None or k in fault_kinds] if faults else []
    plan: list[Round] = [Round(i, "kill") for i in range(kills)]
    for j, kind in enumerate(kinds):  # spread the fault rounds between the kill rounds
        plan.insert(min(len(plan), 1 + j * 2), Round(0, "fault", kind, "entry" if j % 2 == 0 else "exit"))
    for i, rnd in enumerate(plan):
        rnd.n = i
    started = time.monotonic()
    with start_emulator(venues, state_path=workdir / "venues.sqlite", seed=market_seed) as emu:
        settings = write_settings(workdir, venues, emu.base_urls, busy_poll)
        env = keys_env(emu)
        for rnd in plan:
            run_round(emu, rnd, db, settings, workdir, env, rng, venues, until_fired_s=until_fired_s)
        final = Round(len(plan), "graceful")
        graceful_round(emu, final, db, settings, workdir, env)
        plan.append(final)
        audit = audit_live(db, emu.core.store.path, workdir / "audit", final=True)
        absurd = absurd_orders(emu, db)
        fired = list(emu.faults.fired)
    a = audit.audit
    restarts = [r.restart_s for r in plan if r.restart_s is not None]
    per_kill = {}
    for r in plan:
        for name, items in r.violations.items():
            per_kill[name] = per_kill.get(name, 0) + len(items)
    problems = audit.problems
    if absurd:
        problems["traded_on_absurd_data"] = absurd
    states = dict(a.states)  # type: ignore[attr-defined]
    summary = {
        "venues": venues, "seed": seed, "market_seed": market_seed, "rounds": len(plan), "busy_poll": busy_poll,
        "spare_connections": load_settings(settings).live.spare_connections,  # (the bot's default)
        "kills": sum(1 for r in plan if r.kind in ("kill", "fault")),
        "killed_before_startup": sum(1 for r in plan if r.killed_before_startup),
        "kills_while_holding": sum(1 for r in plan if r.held_at_kill),
        "faults_injected": {r.fault: {"phase": r.phase, "fired": r.fault_fired} for r in plan if r.kind == "fault"},
        "faults_fired_total": sum(1 for f in fired if (f.get("params") or {}).get("offset_ms") != 0
                                  and (f.get("params") or {}).get("factor") != 1),
        "exit_codes": [r.exit_code for r in plan],
        "graceful_exit_code": final.exit_code,
        "orphan_legs": len(a.unowned_exposure) + per_kill.get("unowned_exposure", 0),  # type: ignore[attr-defined]
        "duplicate_orders": (len(a.duplicate_client_ids) + len(a.duplicate_open_legs)  # type: ignore[attr-defined]
                             + len(a.overfilled_orders) + len(a.unknown_venue_orders)  # type: ignore[attr-defined]
                             + sum(per_kill.get(k, 0) for k in ("duplicate_client_ids", "duplicate_open_legs",
                                                                 "overfilled_orders", "unknown_venue_orders"))),
        "lost_positions": (sum(n for s, n in states.items() if s != "closed") + len(a.closed_not_flat)  # type: ignore[attr-defined]
                           + len(audit.unknown_positions) + per_kill.get("unknown_positions", 0)
                           + per_kill.get("closed_not_flat", 0)),
        "traded_on_absurd_data": len(absurd),
        "venue_positions_at_end": {f"{v}:{s}": str(z) for (v, s), z in audit.venue_positions.items()},
        "position_states": states,
        "positions_opened": sum(states.values()),
        "bot_fills": audit.bot_fills, "venue_fills": audit.venue_fills,
        "bot_funding_payments": audit.bot_funding, "venue_funding_payments": audit.venue_funding,
        "per_kill_violations": per_kill,
        "problems": problems,
        "restart_to_startup_s": ({"p50": round(statistics.median(restarts), 2), "max": round(max(restarts), 2),
                                  "n": len(restarts)} if restarts else None),
        "wall_s": round(time.monotonic() - started, 1), "loadavg": list(os.getloadavg()),
        "rounds_detail": [asdict(r) for r in plan],
    }
    summary["ok"] = (final.exit_code == 0 and not problems and summary["orphan_legs"] == 0
                     and summary["duplicate_orders"] == 0 and summary["lost_positions"] == 0
                     and not audit.venue_positions)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=12, help="plain SIGKILL rounds (fault rounds come on top)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--market-seed", type=int, default=3,
                        help="the emulated market's seed (3: a spread the bot enters at once)")
    parser.add_argument("--venues", default="bybit,hyperliquid", help="two or three of bybit,binanceusdm,hyperliquid,okx")
    parser.add_argument("--no-faults", action="store_true", help="kill rounds only")
    parser.add_argument("--busy-poll", action="store_true",
                        help="the bot runs with live.busy_poll = true (and so idle-time order rehearsals)")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="live-torture-"))
    venues = [v.strip() for v in args.venues.split(",") if v.strip()]
    summary = torture(workdir, kills=args.kills, seed=args.seed, venues=venues, faults=not args.no_faults,
                      market_seed=args.market_seed, busy_poll=args.busy_poll)
    summary["workdir"] = str(workdir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    else:
        for key, value in summary.items():
            if key != "rounds_detail":
                print(f"{key}: {value}")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
