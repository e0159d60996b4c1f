"""HJ 212-2017 dataloggers (see README.md in this folder)."""

from drivers.hj212.config import Hj212Channel, Hj212Config
from drivers.hj212.driver import Hj212Driver

__all__ = ["Hj212Channel", "Hj212Config", "Hj212Driver"]
