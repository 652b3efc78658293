"""The edge agent: GNSS in, gated fixes and events into the outbox, MQTT out."""
