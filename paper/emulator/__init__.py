"""Local venue emulator: Bybit v5 (linear and spot), Binance USD-M, Hyperliquid and OKX v5 dialects on 127.0.0.1.

Usage (tests, adapters)::

    from paper.emulator import start_emulator

    emu = start_emulator(["bybit", "binanceusdm"], state_path=tmp / "venues.sqlite", seed=7)
    try:
        emu.base_urls["bybit"]          # "http://127.0.0.1:PORT"  (REST; streams on the same port)
        emu.ws_urls["bybit"]            # "ws://127.0.0.1:PORT"    (/v5/public/linear, /v5/private)
        emu.credentials["bybit"]        # ApiKey(key="emu-bybit-key", secret="emu-bybit-secret")
        emu.credentials["okx"]          # ApiKey("emu-okx-key", "emu-okx-secret", passphrase="emu-okx-passphrase")
        ex = ccxt.async_support.bybit({...keys...}); emu.point_ccxt(ex)   # rewrites ex.urls['api']
        session = pybit.unified_trading.HTTP(...); emu.point_pybit(session)
        emu.faults.arm("drop_after_execute", venue="bybit")             # next order: executed, no answer
        emu.faults.arm("rate_limit", venue="binanceusdm", count=2)
        emu.faults.arm("clock_skew", venue="bybit", offset_ms=-30_000)
        emu.set_interval("bybit", "SOL", 1)                             # funding interval change
        emu.advance_ms(3_600_000)                                       # jump the venue clock (settles funding)
        emu.core.executor                                               # the venue's own records
    finally:
        emu.stop()

``start_emulator`` runs the servers in a background thread with their own event loop, so blocking
clients (pybit) and async ones (ccxt) in the caller both work; ``serve`` runs them in the current
loop (``python -m bot emulate``). Hyperliquid accounts are the EVM addresses the signatures recover
to (``credentials["hyperliquid"]`` holds a test private key and its address).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from concurrent.futures import Future
from decimal import Decimal
from pathlib import Path
from typing import Any

from paper.emulator.core import DIALECTS, EmulatorCore
from paper.emulator.faults import FAULT_KINDS, FaultError, FaultSwitchboard
from paper.emulator.server import RunningEmulator, start_servers
from paper.emulator.wire import ApiKey

__all__ = ["EMULATED_VENUES", "FAULT_KINDS", "ApiKey", "EmulatorHandle", "FaultError", "default_credentials",
           "start_emulator"]

EMULATED_VENUES = tuple(DIALECTS)
# Public, well-known test key (hardhat account #0): never holds real funds.
HYPERLIQUID_TEST_PRIVATE_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
HYPERLIQUID_TEST_ADDRESS = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"


def default_credentials(venue: str) -> ApiKey:
    """The test credentials the emulator accepts by default for ``venue``."""
    if venue == "hyperliquid":
        return ApiKey(key=HYPERLIQUID_TEST_ADDRESS, secret=HYPERLIQUID_TEST_PRIVATE_KEY)
    if venue == "okx":  # OKX keys come with a passphrase (OKX_API_PASSPHRASE)
        return ApiKey(key="emu-okx-key", secret="emu-okx-secret", passphrase="emu-okx-passphrase")
    return ApiKey(key=f"emu-{venue}-key", secret=f"emu-{venue}-secret")


def _credential_tables(venues: Iterable[str], credentials: dict[str, ApiKey] | None) -> dict[str, dict[str, Any]]:
    """venue -> {api key (or address) -> secret}; okx -> {api key -> ApiKey} (its passphrase is checked too)."""
    out: dict[str, dict[str, Any]] = {}
    for venue in venues:
        cred = (credentials or {}).get(venue) or default_credentials(venue)
        if venue == "okx":
            out[venue] = {cred.key: cred}
        else:
            out[venue] = {cred.key.lower() if venue == "hyperliquid" else cred.key: cred.secret}
    return out


class EmulatorHandle:
    """A running emulator (background thread). See the module docstring."""

    def __init__(self, core: EmulatorCore, credentials: dict[str, ApiKey], rate_limits: bool = False) -> None:
        self.core = core
        self._rate_limits = rate_limits
        self.faults = FaultSwitchboard(core.venues, core.symbols)
        self.credentials = credentials
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="venue-emulator", daemon=True)
        self._ready: Future = Future()
        self._running: RunningEmulator | None = None
        self._stopped = False

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._running = self._loop.run_until_complete(
                start_servers(self.core, self.faults, _credential_tables(self.core.venues, self.credentials),
                              self._port_base, self._rate_limits))
        except Exception as exc:  # noqa: BLE001 - any start-up failure (port taken...) is re-raised in start()
            self._ready.set_exception(exc)
            self._loop.close()
            return
        self._ready.set_result(True)
        self._loop.run_forever()
        self._loop.run_until_complete(self._running.stop())
        self._loop.close()

    def start(self, port_base: int = 0) -> EmulatorHandle:
        self._port_base = port_base
        self._thread.start()
        self._ready.result(timeout=30)
        return self

    # -- addresses ---------------------------------------------------------------------------------
    @property
    def ports(self) -> dict[str, int]:
        assert self._running is not None
        return dict(self._running.ports)

    @property
    def base_urls(self) -> dict[str, str]:
        """venue -> REST base URL (``http://127.0.0.1:PORT``)."""
        return {v: f"http://127.0.0.1:{p}" for v, p in self.ports.items() if v != "control"}

    @property
    def ws_urls(self) -> dict[str, str]:
        """venue -> stream base URL (``ws://127.0.0.1:PORT``; the venue's stream paths go after it)."""
        return {v: f"ws://127.0.0.1:{p}" for v, p in self.ports.items() if v != "control"}

    @property
    def control_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['control']}"

    def point_ccxt(self, exchange: Any) -> Any:
        """Rewrite a ccxt (or ccxt.pro) exchange's REST and stream URLs to this emulator. Call after
        any ``set_sandbox_mode``. Returns the exchange."""
        venue = exchange.id
        if venue not in self.core.venues:
            raise ValueError(f"{venue} is not emulated here ({', '.join(self.core.venues)})")
        exchange.urls["api"] = rewrite_urls(exchange.urls["api"], self.base_urls[venue], self.ws_urls[venue])
        return exchange

    def point_pybit(self, session: Any) -> Any:
        """Point a pybit ``unified_trading.HTTP`` session at this emulator's Bybit port."""
        session.endpoint = self.base_urls["bybit"]
        return session

    # -- control -------------------------------------------------------------------------------------
    def _call(self, fn, *args) -> Any:
        async def run() -> Any:
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=30)

    def advance_ms(self, ms: int) -> list:
        """Move the venues' clock forward by ``ms`` (settles funding on the way); a running clock
        then keeps running from there."""
        return self._call(self.core.advance_ms, ms)

    def set_interval(self, venue: str, symbol: str, hours: int) -> None:
        self._call(self.core.set_interval, venue, symbol, hours)

    def call(self, fn, *args) -> Any:
        """Run ``fn(*args)`` in the emulator's loop (safe access to the core from another thread)."""
        return self._call(fn, *args)

    def stop(self) -> None:
        """Stop the servers and close the venue state file (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)

    def __enter__(self) -> EmulatorHandle:  # noqa: PYI034 - a final class
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def rewrite_urls(node: Any, http_base: str, ws_base: str) -> Any:
    """Replace scheme+host of every URL string in a (nested) ccxt ``urls['api']`` dict, keeping the path."""
    if isinstance(node, dict):
        return {k: rewrite_urls(v, http_base, ws_base) for k, v in node.items()}
    if isinstance(node, str) and "://" in node:
        scheme, rest = node.split("://", 1)
        path = rest[rest.index("/"):] if "/" in rest else ""
        return (ws_base if scheme.startswith("ws") else http_base) + path
    return node


def start_emulator(
    venues: Iterable[str],
    *,
    state_path: str | Path | None = None,
    seed: int = 0,
    speed: float = 1.0,
    port_base: int = 0,
    manual_clock: bool = False,
    start_ts_ms: int | None = None,
    symbols: tuple[str, ...] | None = None,
    credentials: dict[str, ApiKey] | None = None,
    interval_overrides: dict[str, dict[str, int]] | None = None,
    starting_balance_usd: Decimal = Decimal(100_000),
    step_seconds: int | None = None,
    rate_limits: bool = False,
    spot_starting_coins: dict[str, dict[str, Decimal]] | None = None,
    history_hours: int = 0,
) -> EmulatorHandle:
    """Start the emulator in a background thread and return its handle (ports 0 = any free port).

    ``step_seconds``: the simulated market's step (books change once a step); default 1 s at speed
    <= 20, else 60 s. Use 60 for manual-clock tests that jump days ahead. ``rate_limits``: enforce the
    venues' documented REST limits (``paper.emulator.rate_limits``). ``spot_starting_coins``: venue ->
    coin -> amount the spot wallet holds before anything trades (coins the bot does not own; applied to
    a fresh state file only). ``history_hours``: public funding history a fresh state starts with
    (``EmulatorCore.backfill_rate_history``; the ``emulate`` command's default is 672)."""
    venues = tuple(venues)
    kwargs: dict[str, Any] = {}
    if symbols is not None:
        kwargs["symbols"] = tuple(symbols)
    core = EmulatorCore(venues, seed=seed, speed=speed, state_path=state_path, manual_clock=manual_clock,
                        start_ts_ms=start_ts_ms, interval_overrides=interval_overrides,
                        starting_balance_usd=starting_balance_usd, step_seconds=step_seconds,
                        spot_starting_coins=spot_starting_coins, **kwargs)
    core.backfill_rate_history(history_hours)
    creds = {v: (credentials or {}).get(v) or default_credentials(v) for v in venues}
    handle = EmulatorHandle(core, creds, rate_limits)
    try:
        return handle.start(port_base)
    except BaseException:
        core.close()
        raise
