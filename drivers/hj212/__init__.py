"""HJ 212-2017 dataloggers (see README.md in this folder); the registry loads ``driver``."""
