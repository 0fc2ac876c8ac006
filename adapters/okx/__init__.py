"""OKX USDT-margined perpetual swaps through ccxt (async REST + ccxt.pro streams)."""
