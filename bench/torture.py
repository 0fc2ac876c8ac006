"""Crash torture: run the real paper bot, SIGKILL it at random moments, restart it on the same files.

    python bench/torture.py [--kills 20] [--seed 1] [--speed 3600] [--latency-ms 5] [--json] [--workdir DIR]
    python bench/torture.py --live [...]   (the live path against the venue emulator: bench/live_torture.py)

Each round starts ``python -m bot --paper --speed X --db DB --settings S`` (settings that make
entries and exits frequent), waits a seeded random 0.2-3.0 wall seconds and kills it with
SIGKILL (wherever it is: importing, recovering, mid-entry, mid-exit). After the last kill the bot
is started once more with ``--duration 5``: its start-up recovery runs, then the graceful stop
flattens everything (exit 0 means flat).

The two SQLite files (the bot's DB and the paper venues' ``<stem>.venues.sqlite``) are then
audited (tests/engine_harness.py::audit_files): every venue position owned by an open position,
every open position's legs equal to the venue, nothing opened twice, the end state flat.

Output (one JSON object with --json): kills, exit codes, orphan_legs, lost_positions,
duplicate_orders, recovery_time_ms (p50/max of process spawn -> 'startup' event visible in the
DB, i.e. interpreter start + restore + reconciliation), reconcile_time_ms (p50/max of the bot's
clock start -> 'startup' event, from simulated time / speed; this includes building the simulated
market, ~0.2 s of funding-model calibration, besides restore + reconciliation), restored_positions
(what the restarts found open), max_unhedged_window_ms (from the events of kind unhedged_window),
the audit's problems. Exit status 0 when every invariant held.

Each round's ``sim.start`` is set just after the latest timestamp in either file (see
``resume_start_iso``): with the default ``"now"`` a sped-up bot restarts its clock hours in the
past.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from bot.core.clock import parse_iso_utc  # noqa: E402
from engine_harness import audit_files  # noqa: E402
from paper.venue_store import venue_store_path_for  # noqa: E402

SETTINGS = """\
[bot]
log_path = "{log}"
status_interval_seconds = 60.0

[strategy]
min_expected_net_usd = "-100"
max_positions = 3

[risk]
max_breakeven_hours = "100000"

[exit]
min_hold_hours = "0"
max_hold_hours = "1"

[paper]
latency_ms = {latency_ms}

[shutdown]
deadline_seconds = 30
"""

POLL_S = 0.01
STARTUP_RE = re.compile(r"sim start (\S+), speed x([0-9.e+]+)")
RESTORED_RE = re.compile(r"(\d+) position\(s\) restored, (\d+) reconciliation finding")


@dataclass
class Round:
    kind: str  # "kill" or "graceful"
    exit_code: int | None
    wall_s: float
    recovery_ms: float | None = None  # spawn -> startup event visible
    reconcile_ms: float | None = None  # bot clock start -> startup event
    startup_message: str | None = None

    @property
    def restored_and_findings(self) -> tuple[int, int]:
        """(positions restored, reconciliation findings) reported by this lifetime's start-up."""
        match = RESTORED_RE.search(self.startup_message or "")
        return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


@dataclass
class TortureResult:
    rounds: list[Round] = field(default_factory=list)


def write_settings(workdir: Path, start_iso: str = "now", latency_ms: int = 5, execution: str = "taker",
                   carry: bool = False) -> Path:
    path = workdir / "torture.toml"
    text = SETTINGS.format(log=(workdir / "bot.log.jsonl").as_posix(), latency_ms=latency_ms)
    text = text.replace("[strategy]\n", f'[strategy]\nexecution = "{execution}"\n')
    spot = ""
    if carry:  # spot-perp carry only, on two venues that run spot markets beside their perps
        text = text.replace("[strategy]\n", '[strategy]\npair_kinds = ["spot_perp"]\n')
        spot = 'spot_venues = ["sim-8h", "sim-mixed"]\n'
    if execution == "maker_taker":
        # Makers rest up to 30 sim minutes (0.5 wall s at speed 3600): kills land while they rest.
        text += "\n[execution]\nmaker_timeout_seconds = 1800\n"
    path.write_text(text + f'\n[sim]\nstart = "{start_iso}"\n{spot}')
    return path


def _max_ts(path: Path, queries: tuple[str, ...]) -> int:
    if not path.exists():
        return 0
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    try:
        return max((conn.execute(q).fetchone()[0] or 0 for q in queries), default=0)
    except sqlite3.Error:
        return 0
    finally:
        conn.close()


def resume_start_iso(db: Path) -> str:
    """A simulated start just after the latest time either file has recorded.

    The bot's own default (``sim.start = "now"``) restarts the simulated clock at wall-clock now,
    which after a sped-up run lies HOURS BEFORE what the previous run recorded: restored positions
    then look opened in the future (max-hold exits stall) and funding instants repeat. Reported to
    the lead; until the bot resumes its clock itself, each round starts where the files left off.
    """
    bot_ts = _max_ts(db, ("SELECT MAX(ts_ms) FROM events", "SELECT MAX(ts_ms) FROM transitions",
                          "SELECT MAX(updated_at_ts_ms) FROM positions", "SELECT MAX(ts_ms) FROM fills"))
    venue_ts = _max_ts(venue_store_path_for(db), ("SELECT MAX(updated_ts_ms) FROM venue_orders",
                                                   "SELECT MAX(ts_ms) FROM venue_fills"))
    last_ms = max(bot_ts, venue_ts)
    if last_ms == 0:
        return "now"
    start_s = last_ms // 1000 + 1
    return datetime.fromtimestamp(start_s, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _startup_rows(db: Path) -> list[tuple[int, str]]:
    if not db.exists():
        return []
    try:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=1)
        try:
            return conn.execute("SELECT ts_ms, message FROM events WHERE kind = 'startup' ORDER BY seq").fetchall()
        finally:
            conn.close()
    except sqlite3.Error:  # the file is being created, or its schema not yet written
        return []


def _reconcile_ms(ts_ms: int, message: str) -> float | None:
    match = STARTUP_RE.search(message)
    if match is None:
        return None
    start_ms = parse_iso_utc(match.group(1))
    return (ts_ms - start_ms) / float(match.group(2))


def _spawn(db: Path, settings: Path, speed: str, workdir: Path, n: int, duration: str | None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "bot", "--paper", "--speed", speed, "--db", str(db), "--settings", str(settings)]
    if duration is not None:
        cmd += ["--duration", duration]
    out = open(workdir / f"run{n:03d}.out", "wb")
    return subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONHASHSEED": "0"})


def run_round(db: Path, settings: Path, speed: str, workdir: Path, n: int, *, kill_after_s: float | None,
              timeout_s: float = 90.0, after_startup: bool = False) -> Round:
    """One process lifetime: killed after ``kill_after_s`` wall seconds (counted from its start-up
    event with ``after_startup``, so a slow start on a loaded machine still leaves trading time),
    or run to its own exit."""
    seen = len(_startup_rows(db))
    spawned = time.monotonic()
    proc = _spawn(db, settings, speed, workdir, n, None if kill_after_s is not None else "5")
    recovery_ms = reconcile_ms = None
    message = None
    waiting_for_startup = after_startup and kill_after_s is not None
    deadline = spawned + (timeout_s if waiting_for_startup or kill_after_s is None else kill_after_s)
    while time.monotonic() < deadline and proc.poll() is None:
        if recovery_ms is None:
            rows = _startup_rows(db)
            if len(rows) > seen:
                recovery_ms = (time.monotonic() - spawned) * 1000
                ts_ms, message = rows[-1]
                reconcile_ms = _reconcile_ms(ts_ms, message)
                if waiting_for_startup:
                    deadline = time.monotonic() + kill_after_s
        time.sleep(POLL_S)
    if kill_after_s is not None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        code = proc.wait()
        kind = "kill"
    else:
        try:
            code = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            code = proc.wait()
        kind = "graceful"
    if recovery_ms is None:  # started and finished between two polls, or killed before start-up
        rows = _startup_rows(db)
        if len(rows) > seen and kind == "graceful":
            ts_ms, message = rows[-1]
            reconcile_ms = _reconcile_ms(ts_ms, message)
    return Round(kind, code, time.monotonic() - spawned, recovery_ms, reconcile_ms, message)


def torture(workdir: Path, *, kills: int, seed: int, speed: str = "3600", latency_ms: int = 5,
            min_delay_s: float = 0.2, max_delay_s: float = 3.0, execution: str = "taker",
            after_startup: bool = False, after_startup_from: int | None = None,
            carry: bool = False) -> tuple[TortureResult, Path]:
    """Run ``kills`` killed lifetimes and one graceful one on the same files; return the rounds and DB path.

    A kill delay counts from the process start, or from the lifetime's start-up event when
    ``after_startup`` is set or the round's index is at least ``after_startup_from`` (so the early
    kills may land during start-up recovery and the later ones surely land while trading)."""
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "torture.sqlite"
    rng = random.Random(seed)
    result = TortureResult()
    for n in range(kills):
        settings = write_settings(workdir, resume_start_iso(db), latency_ms, execution, carry)
        result.rounds.append(run_round(db, settings, speed, workdir, n, kill_after_s=rng.uniform(min_delay_s, max_delay_s),
                                       after_startup=after_startup or (after_startup_from is not None
                                                                       and n >= after_startup_from)))
    settings = write_settings(workdir, resume_start_iso(db), latency_ms, execution, carry)
    result.rounds.append(run_round(db, settings, speed, workdir, kills, kill_after_s=None))
    return result, db


def unhedged_windows_ms(db: Path) -> list[float]:
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT details FROM events WHERE kind = 'unhedged_window'").fetchall()
    finally:
        conn.close()
    return [float(json.loads(d)["window_ms"]) for (d,) in rows if d]


def _p50_max(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "max": None, "n": 0}
    return {"p50": round(statistics.median(values), 1), "max": round(max(values), 1), "n": len(values)}


def summarize(result: TortureResult, db: Path) -> dict:
    if not db.exists():
        codes = [r.exit_code for r in result.rounds]
        raise SystemExit(f"the bot never created {db} (exit codes {codes}); see {db.parent}/run*.out")
    audit = audit_files(db)
    windows = unhedged_windows_ms(db)
    graceful = result.rounds[-1]
    return {
        "kills": sum(1 for r in result.rounds if r.kind == "kill"),
        "exit_codes": [r.exit_code for r in result.rounds],
        "graceful_exit_code": graceful.exit_code,
        "orphan_legs": len(audit.unowned_exposure),
        "lost_positions": sum(n for state, n in audit.states.items() if state != "closed") + len(audit.closed_not_flat),
        "duplicate_orders": (len(audit.duplicate_client_ids) + len(audit.duplicate_open_legs)
                             + len(audit.overfilled_orders) + len(audit.unknown_venue_orders)),
        "leg_mismatches": len(audit.leg_mismatches),
        "unrecorded_fills": len(audit.unrecorded_fills),  # venue fills the bot's fill table never got
        "venue_positions": {f"{v}:{s}": str(size) for (v, s), size in audit.venue_positions.items()},
        "position_states": audit.states,
        "recovery_time_ms": _p50_max([r.recovery_ms for r in result.rounds if r.recovery_ms is not None]),
        "reconcile_time_ms": _p50_max([r.reconcile_ms for r in result.rounds if r.reconcile_ms is not None]),
        "max_unhedged_window_ms": round(max(windows), 3) if windows else None,
        "unhedged_windows": len(windows),
        "killed_before_startup": sum(1 for r in result.rounds if r.kind == "kill" and r.recovery_ms is None),
        "restarts_with_open_positions": sum(1 for r in result.rounds if r.restored_and_findings[0] > 0),
        "restored_positions": sum(r.restored_and_findings[0] for r in result.rounds),
        "startup_findings": sum(r.restored_and_findings[1] for r in result.rounds),
        "problems": audit.problems,
        **_maker_counts(db),
    }


def _maker_counts(db: Path) -> dict[str, int]:
    """Maker-taker entries: maker orders, maker fills, and positions that were resting when a
    lifetime ended (restored in ``resting`` by the next start-up)."""
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        orders = conn.execute("SELECT COUNT(*) FROM orders WHERE post_only = 1").fetchone()[0]
        fills = conn.execute("SELECT COUNT(*) FROM fills WHERE liquidity = 'maker'").fetchone()[0]
        resting_at_restart = conn.execute(
            "SELECT COUNT(DISTINCT t.entity_id) FROM transitions t WHERE t.source = 'resting' AND EXISTS ("
            " SELECT 1 FROM events e WHERE e.kind = 'startup' AND e.ts_ms <= t.ts_ms AND e.ts_ms >= ("
            "  SELECT MIN(t2.ts_ms) FROM transitions t2 WHERE t2.entity_id = t.entity_id AND t2.dest = 'resting'))"
        ).fetchone()[0]
    except sqlite3.Error:  # a database from before post-only orders
        return {"maker_orders": 0, "maker_fills": 0, "resting_across_restart": 0}
    finally:
        conn.close()
    return {"maker_orders": orders, "maker_fills": fills, "resting_across_restart": resting_at_restart}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--live" in argv:
        argv.remove("--live")
        from bench.live_torture import main as live_main

        return live_main(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--speed", default="3600")
    parser.add_argument("--latency-ms", type=int, default=5,
                        help="paper.latency_ms (SIMULATED ms, at most 60000: at --speed 3600, 36000 is 10 wall "
                             "ms); larger values widen the in-flight windows a kill can land in")
    parser.add_argument("--execution", choices=("taker", "maker_taker"), default="taker",
                        help="strategy.execution of every lifetime")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.workdir is not None:
        workdir = args.workdir
    else:
        workdir = Path(tempfile.mkdtemp(prefix="torture-"))
    started = time.monotonic()
    result, db = torture(workdir, kills=args.kills, seed=args.seed, speed=args.speed, latency_ms=args.latency_ms,
                         execution=args.execution)
    summary = summarize(result, db)
    summary["wall_s"] = round(time.monotonic() - started, 1)
    summary["workdir"] = str(workdir)
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    else:
        for key, value in summary.items():
            print(f"{key}: {value}")
    ok = (summary["graceful_exit_code"] == 0 and not summary["problems"] and summary["orphan_legs"] == 0
          and summary["lost_positions"] == 0 and summary["duplicate_orders"] == 0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
