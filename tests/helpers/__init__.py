"""Helpers the tests import (``from tests.helpers.station import wait_for``); tests/conftest.py
holds only fixtures and hooks."""
