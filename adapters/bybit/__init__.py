"""Bybit v5 linear perpetuals through pybit (REST) and the ``websockets`` library (streams)."""
