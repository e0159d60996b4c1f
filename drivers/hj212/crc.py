"""The HJ 212-2017 packet CRC (Appendix A of the standard).

Not CRC-16/MODBUS: each byte is XORed into the *high-shifted* register (``crc >> 8``) before the
eight shift-and-xor steps with 0xA001. The standard's worked example
``QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&``
gives ``1C80`` (CRC-16/MODBUS gives ``0759``).
"""

from __future__ import annotations


def _table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _table()


def crc16(data: bytes) -> int:
    """The Appendix A CRC of a data segment (the bytes between the length and the CRC)."""
    crc = 0xFFFF
    for byte in data:
        # (crc >> 8) ^ byte fits in 8 bits, so the eight steps are one table look-up
        crc = _TABLE[(crc >> 8) ^ byte]
    return crc
