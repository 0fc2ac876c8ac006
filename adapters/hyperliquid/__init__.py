"""Hyperliquid perpetuals through ccxt (async REST ``/info`` + ``/exchange``, ccxt.pro streams)."""
