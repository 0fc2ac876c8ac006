"""Binance USD-M perpetuals through ccxt (async REST + ccxt.pro streams). Aster speaks the same dialect."""
