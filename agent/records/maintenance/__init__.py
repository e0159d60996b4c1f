"""Maintenance records: technicians' windows and analyzers' calibration."""
