"""Real servers on free loopback ports, started and stopped by PID: a 3-node NATS JetStream
cluster (``nats.NatsCluster``) and a PostgreSQL server (``postgres.PostgresServer``).

Used by the tests, ``station-warehouse demo --cluster`` and ``bench/fleet.py``; nothing here is
a mock. Imports only the standard library (``warehouse`` imports only ``core``).
"""
