"""The ``station-agent`` command line: one module per command, each exporting
``add(subparsers)``.
"""
