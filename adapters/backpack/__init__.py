"""Backpack: funding quotes for ``scan``. No recorded payloads in ../shared; see parsing.py."""
