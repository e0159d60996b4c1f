"""Signed remote configuration, the agent's side (issue 32; docs/operations.md, "Remote
configuration"): fetch (``fetch``), verify and check (``decide``), apply through the reload
path and keep crash-safe (``control``, ``agent.config.remote_store``), probation and rollback
(``probation``)."""
