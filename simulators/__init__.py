"""Device simulators for tests, demos and bench work: real sockets, injectable faults."""
