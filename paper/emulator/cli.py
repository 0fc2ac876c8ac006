"""``python -m bot emulate``: serve the emulated venues on 127.0.0.1 until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from decimal import Decimal
from pathlib import Path

from bot.errors import UserInputError
from paper.emulator import EMULATED_VENUES, _credential_tables, default_credentials
from paper.emulator.core import EmulatorCore
from paper.emulator.faults import FaultSwitchboard
from paper.emulator.server import start_servers
from storage.instance_lock import AlreadyRunning, InstanceLock, lock_path_for

DEFAULT_STATE_PATH = Path("data/emulator.venues.sqlite")
MAX_HISTORY_HOURS = 24 * 365
MAX_NETWORK_DELAY_MS = 1000


def parse_venues(text: str) -> tuple[str, ...]:
    venues = tuple(v.strip() for v in text.split(",") if v.strip())
    unknown = [v for v in venues if v not in EMULATED_VENUES]
    if not venues or unknown:
        named = ", ".join(unknown) if unknown else repr(text)
        raise UserInputError(f"--venues: unknown venue {named}; choose from {','.join(EMULATED_VENUES)}")
    if len(set(venues)) != len(venues):
        raise UserInputError("--venues: a venue is named twice")
    return venues


def run_emulate(args) -> int:
    """Entry point of the ``emulate`` command (arguments from ``bot.cli``)."""
    venues = parse_venues(args.venues)
    port_base = args.port_base or 0
    if port_base and not 1024 <= port_base <= 65535 - len(venues):
        raise UserInputError(f"--port-base: {port_base} is out of range; use 1024..{65535 - len(venues)}")
    state = Path(args.state) if args.state else DEFAULT_STATE_PATH
    speed = float(args.speed) if getattr(args, "speed", None) is not None else 1.0
    seed = args.seed if getattr(args, "seed", None) is not None else 0
    history_hours = getattr(args, "history_hours", 0) or 0
    if not 0 <= history_hours <= MAX_HISTORY_HOURS:
        raise UserInputError(f"--history-hours: {history_hours} is out of range; use 0..{MAX_HISTORY_HOURS}")
    delay_ms = float(getattr(args, "network_delay_ms", 0) or 0)
    if not 0 <= delay_ms <= MAX_NETWORK_DELAY_MS:
        raise UserInputError(f"--network-delay-ms: {delay_ms:g} is out of range; use 0..{MAX_NETWORK_DELAY_MS}")
    lock = _lock_state(state)
    existed = state.exists()
    try:
        try:
            core = EmulatorCore(venues, seed=seed, speed=speed, state_path=state,
                                starting_balance_usd=Decimal(100_000))
        except OSError as exc:
            raise UserInputError(f"--state: cannot open {state} ({exc.strerror or exc}); "
                                 "choose a writable path") from None
        core.backfill_rate_history(history_hours)
        try:
            return asyncio.run(_serve(core, venues, port_base, bool(getattr(args, "rate_limits", False)), delay_ms))
        except UserInputError:
            if not existed:  # nothing was served: the files made for this run go with it
                _remove_state_files(state)
                lock.release()
                lock_path_for(state).unlink(missing_ok=True)
            raise
    finally:
        lock.release()


def _lock_state(state: Path) -> InstanceLock:
    """One emulator per state file: two would each keep their own copy of the venues' books and
    overwrite each other's orders, balances and clock."""
    try:
        return InstanceLock.acquire(state)
    except AlreadyRunning as exc:
        holder = f"pid {exc.pid}" if exc.pid else "another process"
        raise UserInputError(f"--state: {state} is in use by a running emulator ({holder}); stop it or choose "
                             "another --state") from None
    except OSError as exc:
        raise UserInputError(f"--state: cannot lock {state} ({exc.strerror or exc}); choose a writable path") from None


def _remove_state_files(state: Path) -> None:
    for path in (state, state.with_name(state.name + "-wal"), state.with_name(state.name + "-shm")):
        path.unlink(missing_ok=True)


async def _serve(core: EmulatorCore, venues: tuple[str, ...], port_base: int, rate_limits: bool,
                 network_delay_ms: float = 0.0) -> int:
    board = FaultSwitchboard(venues, core.symbols)
    creds = {v: default_credentials(v) for v in venues}
    try:
        running = await start_servers(core, board, _credential_tables(venues, creds), port_base, rate_limits,
                                      network_delay_ms)
    except OSError as exc:
        core.close()
        raise UserInputError(f"--port-base: cannot listen on 127.0.0.1 ({exc.strerror or exc}); "
                             f"choose another --port-base or 0 for free ports") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    banner = {
        "emulator": "ready",
        "venues": {v: {"rest": f"http://127.0.0.1:{running.ports[v]}", "ws": f"ws://127.0.0.1:{running.ports[v]}",
                       "test_key": creds[v].key} for v in venues},
        "control": f"http://127.0.0.1:{running.ports['control']}/_emulator/faults",
        "state": str(core.store.path), "speed": core.speed, "rate_limits": rate_limits,
    }
    print(json.dumps(banner), flush=True)
    await stop.wait()
    await running.stop()
    print("emulator stopped", file=sys.stderr, flush=True)
    return 0
