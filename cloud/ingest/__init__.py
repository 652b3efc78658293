"""Cloud ingest: MQTT deliveries through ordered stages into TimescaleDB, then acks."""
