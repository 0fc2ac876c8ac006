"""``python -m bot backtest``: real funding history through the real application on a virtual clock.

``command`` (CLI entry, database and data checks), ``driver`` (steps the application from event to
event), ``references`` (the two reference strategies over the same data and costs), ``summary``
(the numbers, read back from the run's database), ``plot`` (a self-contained HTML page).
"""
