"""Lighter (zk perp DEX): funding quotes and instruments for ``scan`` (ccxt has no order look-up here)."""
