"""The record kinds the project ships: one module per kind, imported here (see core.records).

Add a kind: ``from core.record_kinds import <name>  # noqa: F401`` below.
"""

from core.record_kinds import (
    config,  # noqa: F401
    descriptor,  # noqa: F401
    health,  # noqa: F401
    maintenance,  # noqa: F401
    missed_polls,  # noqa: F401
    rotation,  # noqa: F401
)
