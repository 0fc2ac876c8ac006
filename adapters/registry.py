"""The factory the application shell uses to build live venues (and scan-only quote fetchers).

    venue = await build_live_venue("bybit", LiveVenueConfig(base_url="http://127.0.0.1:8801"),
                                   os.environ, symbols=["BTC", "ETH"], max_slippage_bps=Decimal(10))
    venue.market      # VenueMarketData: instruments/quotes/books/book(symbol); ``await run()`` keeps it live
    venue.executor    # bot.core.ports.Executor for this venue
    await venue.setup()  # one-way mode, margin mode, leverage (idempotent) + clock-skew check
    await venue.close()

Compose several with ``adapters.live.LiveMarketFeed`` / ``MultiVenueExecutor``. Nothing here runs
at import time and ccxt is imported only when a ccxt venue is built. Bad configuration raises
``LiveConfigError`` (a ``ValueError``) whose message is the one line to print after ``error:``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from adapters.credentials import CredentialsError, load_credentials
from adapters.endpoints import EndpointError, check_base_url
from adapters.errors import FatalVenueError
from bot.core.domain import FeeSchedule, FundingQuote, exchange_of
from bot.core.ports import Executor

LIVE_VENUES = ("bybit", "binanceusdm", "okx", "hyperliquid")
# Spot markets that can carry the long leg of a carry position (docs/carry.md: "<venue>:spot").
LIVE_SPOT_MARKETS = ("bybit:spot", "binanceusdm:spot", "okx:spot", "hyperliquid:spot")
SCAN_VENUES = ("bybit", "binanceusdm", "okx", "hyperliquid", "lighter", "paradex", "extended", "grvt", "backpack",
               "aster")
DEFAULT_FEES = {  # base tier, bps (DESIGN.md section 5); override per venue from settings
    "bybit": FeeSchedule(Decimal(2), Decimal("5.5")),
    "binanceusdm": FeeSchedule(Decimal(2), Decimal(5)),
    "okx": FeeSchedule(Decimal(2), Decimal(5)),
    "hyperliquid": FeeSchedule(Decimal("1.5"), Decimal("4.5")),
    "bybit:spot": FeeSchedule(Decimal(10), Decimal(10)),  # Bybit spot base tier: 0.1 % maker and taker
    "binanceusdm:spot": FeeSchedule(Decimal(10), Decimal(10)),  # Binance spot base tier
    "okx:spot": FeeSchedule(Decimal(8), Decimal(10)),  # OKX spot base tier
    "hyperliquid:spot": FeeSchedule(Decimal(4), Decimal(7)),  # Hyperliquid spot base tier
}
MAX_CLOCK_SKEW_MS = 1000


class LiveConfigError(ValueError):
    """Live configuration that cannot work; the message names the setting or variable and the fix."""


@dataclass(frozen=True)
class LiveVenueConfig:
    """Per-venue live settings (the shell maps its ``[venues.NAME]`` section onto this)."""

    testnet: bool = False
    base_url: str | None = None  # REST override (the emulator); loopback only unless allowed
    ws_url: str | None = None  # stream override; defaults to base_url with ws://
    allow_remote_base_url: bool = False
    leverage: Decimal = Decimal(1)
    fees: FeeSchedule | None = None
    quote_every_s: float = 15.0
    stale_after_s: float = 10.0


@dataclass
class LiveVenue:
    """One live venue: its market-data part, its executor and its lifecycle."""

    name: str
    market: Any
    executor: Executor
    setup: Callable[[], Awaitable[list[str]]]
    close: Callable[[], Awaitable[None]]
    description: str
    skipped: list[str] = field(default_factory=list)


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _urls(name: str, config: LiveVenueConfig) -> tuple[str | None, str | None]:
    try:
        base = check_base_url(name, config.base_url, allow_remote=config.allow_remote_base_url)
        ws = check_base_url(name, config.ws_url, allow_remote=config.allow_remote_base_url, key="ws_url")
    except EndpointError as exc:
        raise LiveConfigError(str(exc)) from None
    if ws is None and base is not None:
        ws = "ws" + base[4:]
    return base, ws


async def build_live_venue(name: str, config: LiveVenueConfig, env: Mapping[str, str], *, symbols: Iterable[str],
                           max_slippage_bps: Decimal, now_ms: Callable[[], int] = _wall_ms) -> LiveVenue:
    """Build venue ``name`` for live trading: credentials from ``env``, markets loaded (only
    ``symbols``), market data and executor sharing one client. Raises ``LiveConfigError``."""
    if name not in LIVE_VENUES and name not in LIVE_SPOT_MARKETS:
        raise LiveConfigError(f"venue {name!r} cannot trade live; use one of: "
                              f"{', '.join(LIVE_VENUES + LIVE_SPOT_MARKETS)}")
    if config.leverage <= 0:
        raise LiveConfigError(f"venues.{name}.leverage must be positive, got {config.leverage}")
    base_url, ws_url = _urls(name, config)
    try:
        credentials = load_credentials(exchange_of(name), env)  # a spot market trades on its exchange's keys
    except CredentialsError as exc:
        raise LiveConfigError(str(exc)) from None
    symbols = sorted(set(symbols))
    fees = config.fees or DEFAULT_FEES[name]
    target = base_url or ("testnet" if config.testnet else "mainnet")
    if name == "bybit:spot":  # before the ccxt spot markets: Bybit spot goes through pybit
        return await _build_bybit_spot(config, credentials, base_url, ws_url, symbols, max_slippage_bps, fees, now_ms,
                                       target)
    if name in LIVE_SPOT_MARKETS:
        return await _build_ccxt_spot(name, config, credentials, base_url, ws_url, symbols, max_slippage_bps, fees,
                                      now_ms, target)
    if name == "bybit":
        return await _build_bybit(config, credentials, base_url, ws_url, symbols, max_slippage_bps, fees, now_ms, target)
    return await _build_ccxt(name, config, credentials, base_url, ws_url, symbols, max_slippage_bps, fees, now_ms, target)


async def _build_bybit(config: LiveVenueConfig, credentials: Any, base_url: str | None, ws_url: str | None,
                       symbols: list[str], max_slippage_bps: Decimal, fees: FeeSchedule,
                       now_ms: Callable[[], int], target: str) -> LiveVenue:
    from adapters.bybit import config as bybit_config
    from adapters.bybit.execution import BybitExecutor
    from adapters.bybit.http import BybitHttp
    from adapters.bybit.market_data import BybitMarketData
    from adapters.bybit.private_stream import BybitPrivateStream
    from adapters.bybit.setup import (
        check_skew,
        clock_skew_ms,
        load_markets,
        prepare_account,
    )

    http = BybitHttp(credentials=credentials, testnet=config.testnet, base_url=base_url)
    markets, skipped = await load_markets(http, symbols)
    _require_symbols("bybit", symbols, markets)
    stream = ws_url or (bybit_config.TESTNET_WS if config.testnet else bybit_config.MAINNET_WS)
    market = BybitMarketData(http, markets, ws_url=stream, fees=fees, stale_after_s=config.stale_after_s, now_ms=now_ms)
    private = BybitPrivateStream(credentials, ws_url=stream, now_ms=now_ms)
    market.companions.append(private.run)  # the feed's run() keeps the private stream connected too
    from adapters.live import executor_book, refuse_absurd_book

    executor = BybitExecutor(http, markets=markets, max_slippage_bps=max_slippage_bps,
                             book_for=lambda symbol: executor_book(market, symbol),
                             check_book=lambda symbol, book: refuse_absurd_book(market, symbol, book),
                             now_ms=now_ms, private_stream=private)

    async def setup() -> list[str]:
        check_skew(await clock_skew_ms(http), limit_ms=MAX_CLOCK_SKEW_MS)
        return await prepare_account(http, markets.values(), leverage=config.leverage)

    async def close() -> None:
        return None

    return LiveVenue("bybit", market, executor, setup, close,
                     f"bybit linear USDT perpetuals via pybit on {target} ({', '.join(sorted(markets))})", skipped)


async def _build_bybit_spot(config: LiveVenueConfig, credentials: Any, base_url: str | None, ws_url: str | None,
                            symbols: list[str], max_slippage_bps: Decimal, fees: FeeSchedule,
                            now_ms: Callable[[], int], target: str) -> LiveVenue:
    from adapters.bybit import config as bybit_config
    from adapters.bybit.http import BybitHttp
    from adapters.bybit.private_stream import BybitPrivateStream
    from adapters.bybit.setup import check_skew, clock_skew_ms
    from adapters.bybit.spot import (
        BybitSpotExecutor,
        BybitSpotMarketData,
        load_spot_markets,
    )

    http = BybitHttp(credentials=credentials, testnet=config.testnet, base_url=base_url)
    markets, skipped = await load_spot_markets(http, symbols)
    _require_symbols("bybit:spot", symbols, markets)
    stream = ws_url or (bybit_config.TESTNET_WS if config.testnet else bybit_config.MAINNET_WS)
    market = BybitSpotMarketData(http, markets, ws_url=stream, fees=fees, stale_after_s=config.stale_after_s,
                                 now_ms=now_ms)
    private = BybitPrivateStream(credentials, ws_url=stream, now_ms=now_ms, venue="bybit:spot")
    market.companions.append(private.run)
    from adapters.live import executor_book, refuse_absurd_book

    # Books checked against the perpetuals' mark of the coin (``LiveMarketFeed`` sets the source).
    executor = BybitSpotExecutor(http, markets=markets, max_slippage_bps=max_slippage_bps,
                                 book_for=lambda symbol: executor_book(market, symbol),
                                 check_book=lambda symbol, book: refuse_absurd_book(market, symbol, book),
                                 now_ms=now_ms, private_stream=private)

    async def setup() -> list[str]:
        check_skew(await clock_skew_ms(http), limit_ms=MAX_CLOCK_SKEW_MS)
        return ["spot: no leverage or margin set-up (the bot never borrows)"]

    async def close() -> None:
        return None

    return LiveVenue("bybit:spot", market, executor, setup, close,
                     f"bybit spot (USDT pairs, long carry legs only) via pybit on {target} ({', '.join(sorted(markets))})",
                     skipped)


async def _build_ccxt_spot(name: str, config: LiveVenueConfig, credentials: Any, base_url: str | None,
                           ws_url: str | None, symbols: list[str], max_slippage_bps: Decimal, fees: FeeSchedule,
                           now_ms: Callable[[], int], target: str) -> LiveVenue:
    from adapters.ccxt_common.client import build_exchange
    from adapters.ccxt_common.errors import translate
    from adapters.ccxt_common.spot import (
        CcxtSpotExecutor,
        CcxtSpotMarketData,
        load_spot_markets,
        spot_ccxt_class,
        spot_dialect,
        spot_options,
    )

    exchange = build_exchange(spot_ccxt_class(name), credentials=credentials, testnet=config.testnet,
                              base_url=base_url, ws_url=ws_url, options=spot_options(name))
    try:
        markets, skipped = await load_spot_markets(exchange, name, symbols)
    except Exception as exc:  # noqa: BLE001  (classified and re-raised as ours)
        await exchange.close()
        raise translate(name, exc) from None
    try:
        _require_symbols(name, symbols, markets)
    except FatalVenueError:
        await exchange.close()
        raise
    market = CcxtSpotMarketData(exchange, venue=name, markets=markets, fees=fees, stale_after_s=config.stale_after_s,
                                now_ms=now_ms)
    from adapters.live import executor_book, refuse_absurd_book

    # Books checked against the perpetuals' mark of the coin (``LiveMarketFeed`` sets the source).
    executor = CcxtSpotExecutor(exchange, spot_dialect(name), markets=markets, max_slippage_bps=max_slippage_bps,
                                book_for=lambda symbol: executor_book(market, symbol),
                                check_book=lambda symbol, book: refuse_absurd_book(market, symbol, book),
                                now_ms=now_ms)

    async def setup() -> list[str]:
        return ["spot: no leverage or margin set-up (the bot never borrows)"]

    async def close() -> None:
        await exchange.close()

    return LiveVenue(name, market, executor, setup, close,
                     f"{name} (long carry legs only) via ccxt {spot_ccxt_class(name)} on {target} "
                     f"({', '.join(sorted(markets))})", skipped)


_CCXT_MODULES = {"binanceusdm": "adapters.binanceusdm.dialect", "okx": "adapters.okx.dialect",
                 "hyperliquid": "adapters.hyperliquid.dialect"}


async def _build_ccxt(name: str, config: LiveVenueConfig, credentials: Any, base_url: str | None, ws_url: str | None,
                      symbols: list[str], max_slippage_bps: Decimal, fees: FeeSchedule,
                      now_ms: Callable[[], int], target: str) -> LiveVenue:
    import importlib

    from adapters.ccxt_common.client import build_exchange
    from adapters.ccxt_common.execution import CcxtExecutor
    from adapters.ccxt_common.market_data import CcxtMarketData
    from adapters.ccxt_common.order_stream import CcxtOrderStream

    module = importlib.import_module(_CCXT_MODULES[name])
    exchange = build_exchange(name, credentials=credentials, testnet=config.testnet, base_url=base_url, ws_url=ws_url)
    try:
        markets, skipped = await module.load_markets(exchange, symbols)
    except Exception as exc:  # noqa: BLE001  (classified and re-raised as ours)
        await exchange.close()
        from adapters.ccxt_common.errors import translate

        raise translate(name, exc) from None
    _require_symbols(name, symbols, markets)
    market = CcxtMarketData(exchange, venue=name, markets=markets, fees=fees, fetch_quotes=module.fetch_quotes,
                            quote_every_s=config.quote_every_s, stale_after_s=config.stale_after_s, now_ms=now_ms)
    orders = CcxtOrderStream(exchange, venue=name) if module.DIALECT.order_stream else None
    if orders is not None:
        market.companions.append(orders.run)  # the feed's run() keeps the order stream going too
    from adapters.live import executor_book, refuse_absurd_book

    executor = CcxtExecutor(exchange, module.DIALECT, markets=markets, max_slippage_bps=max_slippage_bps,
                            book_for=lambda symbol: executor_book(market, symbol),
                            check_book=lambda symbol, book: refuse_absurd_book(market, symbol, book),
                            now_ms=now_ms, order_stream=orders)

    async def setup() -> list[str]:
        from adapters.ccxt_common.setup import prepare_account

        return await prepare_account(name, exchange, markets.values(), leverage=config.leverage)

    async def close() -> None:
        await exchange.close()

    return LiveVenue(name, market, executor, setup, close,
                     f"{name} perpetuals via ccxt on {target} ({', '.join(sorted(markets))})", skipped)


def _require_symbols(name: str, symbols: list[str], markets: Mapping[str, Any]) -> None:
    missing = [s for s in symbols if s not in markets]
    if missing:
        raise FatalVenueError(name, f"not listed (or not tradable) here: {', '.join(missing)}; remove them from "
                                    f"the symbols or the venue from the live venues")


# --- scan: funding quotes only, no keys ----------------------------------------------------------

_SCAN_FETCHERS = {
    "lighter": "adapters.lighter.feed", "paradex": "adapters.paradex.feed", "extended": "adapters.extended.feed",
    "grvt": "adapters.grvt.feed", "backpack": "adapters.backpack.feed", "aster": "adapters.aster.feed",
}


async def fetch_scan_quotes(name: str, *, base_url: str | None = None, allow_remote_base_url: bool = False,
                            now_ms: Callable[[], int] = _wall_ms) -> tuple[list[FundingQuote], list[str]]:
    """One round of funding quotes from venue ``name`` (public data, no keys), for ``scan``.
    Returns (quotes, one line per dropped quote)."""
    import importlib

    if name not in SCAN_VENUES:
        raise LiveConfigError(f"venue {name!r} has no live quotes; use one of: {', '.join(SCAN_VENUES)}")
    base, ws = _urls(name, LiveVenueConfig(base_url=base_url, allow_remote_base_url=allow_remote_base_url))
    from adapters.ccxt_common.client import build_exchange
    from adapters.ccxt_common.errors import translate

    exchange = build_exchange(name, credentials=None, base_url=base, ws_url=ws)
    try:
        if name in _SCAN_FETCHERS:
            module = importlib.import_module(_SCAN_FETCHERS[name])
            return await module.fetch_quotes(exchange, now_ms())
        if name == "bybit":
            from adapters.bybit import parsing as bybit_wire

            instruments, _ = bybit_wire.parse_instruments(await exchange.publicGetV5MarketInstrumentsInfo(
                {"category": "linear", "limit": 1000}))
            intervals = {m.venue_symbol: m.instrument.funding_interval_hours for m in instruments}
            return bybit_wire.parse_rest_tickers(await exchange.publicGetV5MarketTickers({"category": "linear"}),
                                                 intervals=intervals)
        module = importlib.import_module(_CCXT_MODULES[name])
        markets, _ = await module.load_markets(exchange, None) if name != "okx" else ({}, [])
        return await module.fetch_quotes(exchange, markets, now_ms())
    except Exception as exc:  # noqa: BLE001  (classified and re-raised as ours)
        raise translate(name, exc) from None
    finally:
        await exchange.close()


@dataclass
class LiveSession:
    """Every configured live venue composed into the application's ports."""

    venues: list[LiveVenue]
    feed: Any  # adapters.live.LiveMarketFeed (a bot.core.ports.MarketFeed)
    executor: Any  # adapters.live.MultiVenueExecutor (a bot.core.ports.Executor)

    def banner(self) -> list[str]:
        """One line per venue: which venue, client, endpoint (mainnet/testnet/emulator), symbols."""
        return [v.description for v in self.venues]

    async def setup(self) -> list[str]:
        """Idempotent account set-up on every venue (raises ours on the first refusal)."""
        lines: list[str] = []
        for v in self.venues:
            lines.extend(f"{v.name}: {line}" for line in await v.setup())
        return lines

    async def close(self) -> None:
        for v in self.venues:
            await v.close()


async def build_live_session(configs: Mapping[str, LiveVenueConfig], env: Mapping[str, str], *,
                             symbols: Iterable[str], max_slippage_bps: Decimal,
                             now_ms: Callable[[], int] = _wall_ms, max_book_age_ms: int | None = 10_000) -> LiveSession:
    """Build every venue of ``configs`` (name -> config) and compose them; on any failure the venues
    already built are closed before the error propagates."""
    from adapters.live import LiveMarketFeed, MultiVenueExecutor

    symbols = list(symbols)
    venues: list[LiveVenue] = []
    try:
        for name, config in configs.items():
            venues.append(await build_live_venue(name, config, env, symbols=symbols,
                                                 max_slippage_bps=max_slippage_bps, now_ms=now_ms))
    except BaseException:
        for v in venues:
            await v.close()
        raise
    feed = LiveMarketFeed([v.market for v in venues], max_book_age_ms=max_book_age_ms, now_ms=now_ms)
    executor = MultiVenueExecutor({v.name: v.executor for v in venues})
    return LiveSession(venues, feed, executor)


# --- public data only (``--paper --market live``): no keys, no executor -------------------------

@dataclass
class PublicSession:
    """The configured venues' public market data composed into one feed (no keys, no orders)."""

    venues: list[LiveVenue]
    feed: Any  # adapters.live.LiveMarketFeed

    def banner(self) -> list[str]:
        return [v.description for v in self.venues]

    async def close(self) -> None:
        for v in self.venues:
            await v.close()


async def build_public_venue(name: str, config: LiveVenueConfig, *, symbols: Iterable[str],
                             now_ms: Callable[[], int] = _wall_ms) -> LiveVenue:
    """Venue ``name``'s public market data (books, funding quotes, instruments) without keys: no
    credential is read and no private stream or executor is built. ``LiveVenue.executor`` is None."""
    if name not in LIVE_VENUES:
        raise LiveConfigError(f"venue {name!r} has no public perpetual feed for paper on live data; use one of: "
                              f"{', '.join(LIVE_VENUES)}")
    base_url, ws_url = _urls(name, config)
    symbols = sorted(set(symbols))
    fees = config.fees or DEFAULT_FEES[name]
    target = base_url or ("testnet" if config.testnet else "mainnet")
    if name == "bybit":
        from adapters.bybit import config as bybit_config
        from adapters.bybit.http import BybitHttp
        from adapters.bybit.market_data import BybitMarketData
        from adapters.bybit.setup import load_markets

        http = BybitHttp(credentials=None, testnet=config.testnet, base_url=base_url)
        markets, skipped = await load_markets(http, symbols)
        _require_symbols("bybit", symbols, markets)
        stream = ws_url or (bybit_config.TESTNET_WS if config.testnet else bybit_config.MAINNET_WS)
        market = BybitMarketData(http, markets, ws_url=stream, fees=fees, stale_after_s=config.stale_after_s,
                                 now_ms=now_ms)

        async def close_bybit() -> None:
            return None

        return LiveVenue("bybit", market, None, _no_setup, close_bybit,  # type: ignore[arg-type]
                         f"bybit public data via pybit on {target}, no keys ({', '.join(sorted(markets))})", skipped)
    import importlib

    from adapters.ccxt_common.client import build_exchange
    from adapters.ccxt_common.errors import translate
    from adapters.ccxt_common.market_data import CcxtMarketData

    module = importlib.import_module(_CCXT_MODULES[name])
    exchange = build_exchange(name, credentials=None, testnet=config.testnet, base_url=base_url, ws_url=ws_url)
    try:
        markets, skipped = await module.load_markets(exchange, symbols)
        _require_symbols(name, symbols, markets)
    except FatalVenueError:
        await exchange.close()
        raise
    except Exception as exc:  # noqa: BLE001  (classified and re-raised as ours)
        await exchange.close()
        raise translate(name, exc) from None
    market = CcxtMarketData(exchange, venue=name, markets=markets, fees=fees, fetch_quotes=module.fetch_quotes,
                            quote_every_s=config.quote_every_s, stale_after_s=config.stale_after_s, now_ms=now_ms)

    async def close() -> None:
        await exchange.close()

    return LiveVenue(name, market, None, _no_setup, close,  # type: ignore[arg-type]
                     f"{name} public data via ccxt on {target}, no keys ({', '.join(sorted(markets))})", skipped)


async def _no_setup() -> list[str]:
    return []


async def build_public_session(configs: Mapping[str, LiveVenueConfig], *, symbols: Iterable[str],
                               now_ms: Callable[[], int] = _wall_ms,
                               max_book_age_ms: int | None = 10_000) -> PublicSession:
    """Every venue of ``configs``'s public data composed into one ``LiveMarketFeed`` (no keys read);
    on a failure the venues already built are closed before the error propagates."""
    from adapters.live import LiveMarketFeed

    symbols = list(symbols)
    venues: list[LiveVenue] = []
    try:
        for name, config in configs.items():
            venues.append(await build_public_venue(name, config, symbols=symbols, now_ms=now_ms))
    except BaseException:
        for v in venues:
            await v.close()
        raise
    feed = LiveMarketFeed([v.market for v in venues], max_book_age_ms=max_book_age_ms, now_ms=now_ms)
    return PublicSession(venues, feed)
