"""The operator surface: what a person watching the bot sees and is told.

``surface`` assembles it from settings (journal tail, web server, metrics, notifications) and
hands the supervisor its tasks; nothing in here places orders or decides anything about trading.
"""
