"""Modbus drivers: ``modbus_tcp`` (``tcp.py``) and ``modbus_rtu`` (``rtu.py``); see README.md.

Nothing is imported here, so a simulator that needs only the codec does not load pymodbus.
"""
