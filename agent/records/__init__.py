"""The agent's side of each record kind (descriptor, rotation, maintenance); body models live in
core.record_kinds.
"""
