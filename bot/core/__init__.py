"""The ground floor: domain types, ports, funding math, clocks and history readers.

Everything here is importable by the lower packages (machines, risk, paper, storage, adapters)
without importing the application (CLI, supervisor, engine). Nothing here imports from ``bot``
outside ``bot.core``.
"""
