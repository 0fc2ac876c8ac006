"""GRVT (zk perp DEX): funding quotes for ``scan`` (ccxt has no funding-rate call for it)."""
