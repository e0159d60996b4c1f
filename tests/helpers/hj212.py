"""HJ 212 helpers: the datalogger's zone, its channel codes and a device section for it."""

from __future__ import annotations

from zoneinfo import ZoneInfo

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


CODES = {"a21026": ("SO2", "mg/m3"), "a21002": ("NOx", "mg/m3"), "a34013": ("Dust", "mg/m3")}


def hj212_device(port: int, **extra: object) -> dict:
    return {
        "name": "cems",
        "driver": "hj212",
        "host": "127.0.0.1",
        "port": port,
        "mn": "88888880000001",
        "password": "123456",
        "channels": [{"code": c, "param": p, "unit": u} for c, (p, u) in CODES.items()],
        **extra,
    }
