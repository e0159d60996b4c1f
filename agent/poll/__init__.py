"""Pipeline stage 1: poll the devices on their clock and commit every reading at once."""
