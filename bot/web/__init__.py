"""The bot's web server: dashboard page, JSON API, live stream (SSE) and Prometheus /metrics.

Off by default; loopback only unless ``web.allow_remote``; every request needs the token
(``auth``). Runs inside the supervisor's task group and never blocks trading: it reads through
its own database connection and the application's in-memory state, and writes nothing but the
same control requests the CLI writes.
"""
