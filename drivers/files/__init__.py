"""The ``files`` driver: TT10 text files and Campbell TOA5 tables a datalogger writes."""
