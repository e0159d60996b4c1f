"""MQTT transport: publish each batch, acknowledged end to end by the warehouse."""
