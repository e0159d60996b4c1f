"""The rotation record: key files, the switch of keys and its recovery."""
