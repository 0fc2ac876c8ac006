"""Extended (Starknet perp DEX): funding quotes and instruments for ``scan``."""
