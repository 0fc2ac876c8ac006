"""Unmodified ccxt / pybit clients pointed at a running emulator, configured as LIVE.md advises
(pybit's WebSocket gets one guard against a race of its own, see ``pybit_websocket``).

For tests, benchmarks and rehearsals only; the live adapters build their own clients from settings.
"""

from __future__ import annotations

from typing import Any

from paper.emulator import EmulatorHandle, rewrite_urls

CCXT_SYMBOLS = {"bybit": "{symbol}/USDT:USDT", "binanceusdm": "{symbol}/USDT:USDT", "hyperliquid": "{symbol}/USDC:USDC",
                "okx": "{symbol}/USDT:USDT"}


def ccxt_symbol(venue: str, symbol: str) -> str:
    """The ccxt unified symbol of a canonical base asset on ``venue`` (``BTC`` -> ``BTC/USDT:USDT``)."""
    return CCXT_SYMBOLS[venue].format(symbol=symbol)


def ccxt_options(venue: str) -> dict[str, Any]:
    """Client options that avoid calls a perp-only bot never needs (LIVE.md section 2)."""
    if venue == "bybit":
        return {"options": {"fetchMarkets": {"types": ["linear"]}, "enableUnifiedAccount": True,
                            "enableUnifiedMargin": False}, "has": {"fetchCurrencies": False}}
    if venue == "binanceusdm":
        return {"options": {"fetchCurrencies": False, "fetchMargins": False, "recvWindow": 5000}}
    if venue == "hyperliquid":
        return {"options": {"builderFee": False, "approvedBuilderFee": True, "refSet": True,
                            "fetchMarkets": {"types": ["swap"]}}}
    if venue == "okx":
        return {"options": {"fetchMarkets": {"types": ["swap"]}, "defaultType": "swap"}}
    raise ValueError(f"no ccxt options for {venue}")


def ccxt_client(handle: EmulatorHandle, venue: str, *, pro: bool = False, keys: bool = True,
                **config: Any) -> Any:
    """A ccxt async (or ccxt.pro) exchange for ``venue`` on this emulator, with its test credentials.

    ccxt's own request throttle is off unless ``enableRateLimit=True`` is passed: against a local
    emulator it only slows tests down (hyperliquid weighs an ``l2Book`` at half a second)."""
    if pro:
        import ccxt.pro as module
    else:
        import ccxt.async_support as module
    merged: dict[str, Any] = {**ccxt_options(venue), "enableRateLimit": False}
    if keys:
        cred = handle.credentials[venue]
        if venue == "hyperliquid":
            merged.update(walletAddress=cred.key, privateKey=cred.secret)
        elif venue == "okx":
            merged.update(apiKey=cred.key, secret=cred.secret, password=cred.passphrase)
        else:
            merged.update(apiKey=cred.key, secret=cred.secret)
    for key, value in config.items():
        if key == "options":
            merged["options"] = {**merged.get("options", {}), **value}
        else:
            merged[key] = value
    exchange = getattr(module, venue)(merged)
    exchange.urls["api"] = rewrite_urls(exchange.urls["api"], handle.base_urls[venue], handle.ws_urls[venue])
    return exchange


def pybit_http(handle: EmulatorHandle, **kwargs: Any) -> Any:
    """A pybit ``unified_trading.HTTP`` session on this emulator's Bybit port (orders: no resends)."""
    from pybit.unified_trading import HTTP

    cred = handle.credentials["bybit"]
    params = {"api_key": cred.key, "api_secret": cred.secret, "max_retries": 1, "retry_codes": {-1},
              "force_retry": False, **kwargs}
    session = HTTP(**params)
    session.endpoint = handle.base_urls["bybit"]
    return session


def pybit_websocket(handle: EmulatorHandle, channel_type: str, **kwargs: Any) -> Any:
    """A pybit ``unified_trading.WebSocket`` whose connections (and reconnections) go to this emulator.

    pybit's own code runs unchanged, with one guard around a race of its own: ``subscribe()`` (pybit
    5.17 ``_V5WebSocketManager.subscribe``) sends the request and only then records its ``req_id``
    and the topic's callback. When the receiving thread handles the answer (or the first snapshot)
    inside that window, ``self.subscriptions[req_id]`` (or the callback lookup) raises ``KeyError``
    in that thread, pybit's ``_on_error`` closes the socket for good and does not reconnect. A local
    emulator answers within a millisecond while the subscribing thread waits for the GIL, so the
    window is hit (about 1 subscribe in 20 on a quiet 2-core machine); a real user close to Bybit
    with a busy process can hit it too. Here the receiving thread waits until ``subscribe()`` has
    recorded the request, as it would if pybit recorded before sending. The bot's live streams do
    not use pybit's WebSocket (adapters/bybit/market_data.py, private_stream.py use ``websockets``)."""
    import threading

    from pybit.unified_trading import WebSocket

    base = handle.ws_urls["bybit"]

    class EmulatedWebSocket(WebSocket):
        def __init__(self, **params: Any) -> None:
            self._recording = threading.RLock()  # held by subscribe() until pybit has recorded the request
            super().__init__(**params)

        def _connect(self, url: str) -> None:
            path = url[url.index("/v5/"):]
            super()._connect(base + path)

        def subscribe(self, topic: str, callback: Any, symbol: Any = False) -> None:
            with self._recording:
                super().subscribe(topic, callback, symbol)

        def _on_message(self, message: str) -> None:
            with self._recording:
                super()._on_message(message)

    if channel_type == "private" and "api_key" not in kwargs:
        cred = handle.credentials["bybit"]
        kwargs.update(api_key=cred.key, api_secret=cred.secret)
    kwargs.setdefault("testnet", False)
    return EmulatedWebSocket(channel_type=channel_type, **kwargs)
