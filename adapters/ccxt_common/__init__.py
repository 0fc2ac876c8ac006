"""Machinery shared by the venues we drive through ccxt (async REST + ccxt.pro streams).

Nothing here imports ccxt at module import time except ``errors`` and ``client``, which are only
imported once a ccxt venue is configured, so ``--paper`` never loads ccxt (~0.5 s, ~100 MB).
"""
