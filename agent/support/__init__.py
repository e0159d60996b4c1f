"""Support: logs, bounded reads, workers, ticker, systemd notify, instance lock, clock and its
sync, section building blocks.
"""
