"""The one exception family of station-agent; every message is meant for a technician to act on."""


class AgentError(Exception):
    """Base of every error station-agent reports to its user."""


class ConfigError(AgentError):
    """The configuration file is missing, unreadable or invalid."""


class KeyFileError(AgentError):
    """The signing key is missing, unreadable, malformed or too widely readable."""


class DeviceError(AgentError):
    """A device did not answer, or answered something we cannot use."""


class StorageError(AgentError):
    """The local SQLite buffer cannot be opened or written."""


class DiskFullError(StorageError):
    """The buffer cannot grow: the disk or the configured cap is full."""


class TransportError(AgentError):
    """A batch could not be delivered (network, broker, HTTP status)."""


class VerificationError(AgentError):
    """A signed batch failed verification (signature, key, chain, format)."""
