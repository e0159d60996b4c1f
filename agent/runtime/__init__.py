"""The running agent: its wiring (Agent), housekeeping and pruning duties."""
