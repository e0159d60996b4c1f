"""The warehouse: receives signed batches from stations, verifies and stores them.

Imports only ``core`` (an import-linter contract): its verification (``warehouse.verify``) is
written apart from the agent's, so a bug on one side cannot hide in the other.
"""
