"""Aster (Binance-compatible ``/fapi`` dialect): funding quotes for ``scan`` via the Binance parser
(``adapters.binanceusdm.parsing`` with ``venue="aster"``). No testnet (ccxt refuses sandbox mode)."""
