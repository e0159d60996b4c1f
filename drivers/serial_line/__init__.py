"""Serial line driver (``serial_line``): ASCII line instruments; see README.md.

Nothing is imported here: the driver is in ``driver.py``, its config model in ``config.py``.
"""
