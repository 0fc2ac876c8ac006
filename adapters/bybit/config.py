"""Bybit venue constants: endpoints, documented rate limits, request expiry."""

from __future__ import annotations

VENUE = "bybit"
CATEGORY = "linear"
SETTLE_COIN = "USDT"
RECV_WINDOW_MS = 5000  # X-BAPI-RECV-WINDOW: a request older than this is refused by the venue
CLOCK_SKEW_ALLOWANCE_MS = 2000
# Documented limits: 600 requests / 5 s per IP; order create/cancel 10 / s per symbol (base tier).
REST_RATE = (100, 1.0)  # max requests, per seconds (kept below 120/s)
ORDER_RATE = (10, 1.0)
PUBLIC_WS_PATH = "/v5/public/linear"
PRIVATE_WS_PATH = "/v5/private"
MAINNET_WS = "wss://stream.bybit.com"
TESTNET_WS = "wss://stream-testnet.bybit.com"
